/** A one-line progress display on stderr, shown only on a TTY (never in pipes, CI logs or --json runs). */
export class Progress {
  private readonly enabled: boolean;
  private last = '';

  constructor(enabled: boolean) {
    this.enabled = enabled && process.stderr.isTTY === true;
  }

  update(text: string): void {
    if (!this.enabled || text === this.last) return;
    this.last = text;
    process.stderr.write(`\r\x1b[2K${text}`);
  }

  done(): void {
    if (this.enabled && this.last !== '') process.stderr.write('\r\x1b[2K');
    this.last = '';
  }
}
