export { addressProblem, formatAddress, parseAddress } from './internal/address.js';
export { readU16BE, readU32BE, writeU16BE, writeU32BE } from './internal/bytes.js';
export {
  type Clock,
  perTurn,
  type Random,
  seededRandom,
  systemClock,
  turnClock,
} from './internal/clock.js';
export {
  describeValue,
  ENGRAM_ERROR_BRAND,
  EngramError,
  InvalidArgumentError,
  isEngramError,
  LayoutMismatchError,
} from './internal/errors.js';
export { systemErrorCode, systemErrorText } from './internal/system-error.js';
