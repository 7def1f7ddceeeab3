/**
 * Repository names and tags: validation before anything touches storage.
 */
import { NameInvalidError, TagInvalidError } from './errors.js';

/** A path component of a repository name, as the OCI distribution spec defines it. */
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** The longest repository name accepted (Distribution's limit). */
export const MAX_NAME_LENGTH = 255;

/** Validates a repository name; throws NameInvalidError naming the problem. */
export function assertRepositoryName(name: string): void {
  if (name.length === 0) throw new NameInvalidError('repository name is empty');
  if (name.length > MAX_NAME_LENGTH) {
    throw new NameInvalidError(`repository name is longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (!NAME.test(name)) {
    throw new NameInvalidError(`invalid repository name "${name.slice(0, 80)}"`);
  }
}

/** Returns true when a reference has the shape of a tag. */
export function isTag(reference: string): boolean {
  return TAG.test(reference);
}

/** Validates a tag; throws TagInvalidError naming the problem. */
export function assertTag(tag: string): void {
  if (!TAG.test(tag)) throw new TagInvalidError(`invalid tag "${tag.slice(0, 80)}"`);
}
