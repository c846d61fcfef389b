import { EngramError } from '@engram/common';

/** Stable codes of `HintStoreError`; callers and tests match on these, never on messages. */
export const HINT_STORE_ERROR_CODES = Object.freeze({
  /** A write, sync, rename or read of the node's files failed (or a record read back is bad). */
  HintStoreFailed: 'HintStoreFailed',
  /** The store was closed. */
  HintStoreClosed: 'HintStoreClosed',
} as const);

export type HintStoreErrorCode =
  (typeof HINT_STORE_ERROR_CODES)[keyof typeof HINT_STORE_ERROR_CODES];

/**
 * A hint-store operation failed. Bad arguments and options throw the common
 * `InvalidArgumentError` instead. `nodeId` names the node whose files failed, when one did.
 */
export class HintStoreError extends EngramError {
  declare readonly code: HintStoreErrorCode;
  readonly nodeId: string | undefined;
  constructor(code: HintStoreErrorCode, message: string, nodeId?: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = 'HintStoreError';
    this.nodeId = nodeId;
  }
}
