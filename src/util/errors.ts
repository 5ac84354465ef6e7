/** An error caused by the user's input: the CLI prints its message on one line and exits 1. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Training stopped because the loss became NaN/Inf; the last good checkpoint is intact. */
export class NonFiniteLossError extends UserError {}
