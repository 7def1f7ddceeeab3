import { describe, expect, it } from 'vitest';
import { decodeUploadState, encodeUploadState } from '../../../registry/api/upload-state.js';

const secret = Buffer.from('a shared secret of the deployment');

describe('the signed upload state in upload URLs', () => {
  it('round-trips the size for the same repository, upload and secret', () => {
    const state = encodeUploadState(secret, 'team/app', 'u-1', 123_456);
    expect(state).toMatch(/^123456\.[A-Za-z0-9_-]{22}$/);
    expect(decodeUploadState(secret, 'team/app', 'u-1', state)).toBe(123_456);
  });

  it.each([
    ['another secret', Buffer.from('some other deployment'), 'team/app', 'u-1'],
    ['another repository', secret, 'team/other', 'u-1'],
    ['another upload', secret, 'team/app', 'u-2'],
  ])('ignores a state signed for %s', (_what, key, name, id) => {
    expect(decodeUploadState(key, name, id, encodeUploadState(secret, 'team/app', 'u-1', 10))).toBeUndefined();
  });

  it.each([null, '', '10', '10.', 'x.AAAAAAAAAAAAAAAAAAAAAA', '1234567890123456.AAAAAAAAAAAAAAAAAAAAAA'])('ignores the malformed or forged state %s', (state) => {
    expect(decodeUploadState(secret, 'team/app', 'u-1', state)).toBeUndefined();
  });

  it('ignores a size changed by the client', () => {
    const state = encodeUploadState(secret, 'team/app', 'u-1', 10);
    expect(decodeUploadState(secret, 'team/app', 'u-1', state.replace(/^10/, '99'))).toBeUndefined();
  });
});
