import type { Command } from 'commander';

/** `otadiff serve`, `otadiff device`, `otadiff demo` (the OTA service). */
export function registerOtaCommands(program: Command): void {
  void program;
}
