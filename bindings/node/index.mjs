// ESM entry: the same objects as index.cjs (one source, one shared connection).
import dblease from './index.cjs';

export const {
  Client, DbleaseError, socketPath, template, hashDir, endPool, defaultClient,
  lease, release, renew, status,
} = dblease;
export default dblease;
