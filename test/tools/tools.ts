/**
 * Where the test tools live, and free loopback ports for the peers the tests start.
 *
 * `test/tools/install.sh` installs Debian packages into the usual system paths and
 * builds the Go tools into `toolsDir()/bin`; this module finds both.
 */
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** System directories searched for Debian-installed tools, in order. /usr/local is left out on purpose: CI machines get only what install.sh installs. */
const SYSTEM_BIN_DIRS = ['/usr/bin', '/usr/sbin', '/bin', '/sbin'] as const;

/** Absolute path of the tools cache (`$BERTH_TOOLS_DIR`, else `~/.cache/berth-tools`); the same directory install.sh uses. */
export function toolsDir(): string {
  const fromEnv = process.env['BERTH_TOOLS_DIR'];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.cache', 'berth-tools');
}

/**
 * Absolute path of the executable `name`: first `toolsDir()/bin` (the Go tools, etcd, kube-apiserver, kubectl, helm),
 * then /usr/bin, /usr/sbin, /bin, /sbin; throws an Error telling how to install it when none is executable.
 */
export function toolPath(name: string): string {
  if (name === '' || name.includes('/')) {
    throw new Error(`toolPath takes a bare executable name, got ${JSON.stringify(name)}`);
  }
  const candidates = [join(toolsDir(), 'bin'), ...SYSTEM_BIN_DIRS].map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next directory.
    }
  }
  throw new Error(
    `Test tool '${name}' is not installed (looked in ${candidates.join(', ')}): run \`bash test/tools/install.sh\``,
  );
}

/** Resolves to a TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; a caller should bind it soon). */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`Unexpected server address: ${String(address)}`));
        return;
      }
      const { port } = address;
      server.close((err) => {
        if (err) reject(err);
        else resolve(port);
      });
    });
  });
}
