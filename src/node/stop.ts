// A graceful stop for the training commands. The first SIGINT (Ctrl-C) or SIGTERM asks the loop to
// finish the step it is in, write a checkpoint and return, so `--resume` continues from that very
// step; a second signal exits at once (the last periodic checkpoint is still whole: checkpoints are
// written atomically). Scripts use it to hand a run more threads mid-way: stop it with SIGTERM, then
// `--resume --workers 2` (scripts/train-scenes.sh does so when the renderer frees its core).
/** Exit status of a command stopped by a signal: 128 + the signal's number, as a shell reports a kill. */
const EXIT_STATUS = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof EXIT_STATUS;

export class StopOnSignal {
  /** The signal that asked for the stop, once one did. */
  signal: StopSignal | null = null;
  private readonly handlers = new Map<StopSignal, () => void>();

  /** Listens from now on; `what` names the command in the line printed when a stop is asked. */
  constructor(private readonly what: string) {
    for (const s of Object.keys(EXIT_STATUS) as StopSignal[]) {
      const h = () => {
        if (this.signal) {
          process.stderr.write(`\n${this.what}: ${s} again: exiting now (the last periodic checkpoint stands)\n`);
          process.exit(EXIT_STATUS[s]);
        }
        this.signal = s;
        process.stderr.write(`\n${this.what}: ${s}: stopping after this step with a checkpoint (send it again to exit at once)\n`);
      };
      this.handlers.set(s, h);
      process.on(s, h);
    }
  }

  /**
   * For the training loops: stop before the next step? A step on wasm resolves through microtasks
   * only, so the loop would never let the signal's handler run: this yields to the event loop first.
   */
  readonly requested = async (): Promise<boolean> => {
    await new Promise((done) => setImmediate(done));
    return this.signal !== null;
  };

  /**
   * Stops listening; when a stop was asked, prints where the run stopped and sets the exit status to
   * the signal's (130 or 143), so that a script can tell a stopped run from a finished one.
   */
  finish(out: string, step: number): void {
    for (const [s, h] of this.handlers) process.off(s, h);
    this.handlers.clear();
    if (!this.signal) return;
    process.stderr.write(`${this.what} ${out}: stopped by ${this.signal} at step ${step}, checkpoint written; continue with --resume\n`);
    process.exitCode = EXIT_STATUS[this.signal];
  }
}

