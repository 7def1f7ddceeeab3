/**
 * Writes OCI image layouts on disk for client tests: a multi-platform index whose images have their own
 * layers, built from random bytes so every run pushes new content.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A layout written to disk, with the digests a test checks. */
export interface WrittenLayout {
  readonly dir: string;
  readonly indexDigest: string;
  readonly manifestDigests: string[];
  readonly blobDigests: string[];
}

async function writeBlob(dir: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(dir, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/** Writes an OCI layout holding one image index (tagged `tag`) over one image per platform. */
export async function writeMultiPlatformLayout(
  dir: string,
  tag: string,
  platforms: { os: string; architecture: string }[],
  layersPerImage = 2,
): Promise<WrittenLayout> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const manifests: { mediaType: string; digest: string; size: number; platform: object }[] = [];
  const blobDigests: string[] = [];
  for (const platform of platforms) {
    const layers = [];
    for (let i = 0; i < layersPerImage; i++) {
      const layer = await writeBlob(dir, randomBytes(4096 + i * 1000));
      layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer });
      blobDigests.push(layer.digest);
    }
    const config = await writeBlob(
      dir,
      Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, config: {} })),
    );
    blobDigests.push(config.digest);
    const manifest = await writeBlob(
      dir,
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers,
        }),
      ),
    );
    manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, platform });
  }
  const index = await writeBlob(
    dir,
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests })),
  );
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.index.v1+json', ...index, annotations: { 'org.opencontainers.image.ref.name': tag } },
      ],
    }),
  );
  return { dir, indexDigest: index.digest, manifestDigests: manifests.map((m) => m.digest), blobDigests };
}
