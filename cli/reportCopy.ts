/** `selfreward report --download`: a round's report and the images it links, copied out of the store into a local folder. */
import { join } from 'node:path';

import { linkedKeys } from '../activities/reportLinks.js';
import { artifactKeys } from '../contract/keys.js';
import { checkKey, type ArtifactStore } from '../store/store.js';

/**
 * Copies the round's report and every image it links into `folder`, each at its key's path
 * there, so the report's relative links find the images in the copy as they do in the store.
 * Returns the copied report's path.
 */
export async function downloadReport(store: ArtifactStore, root: string, folder: string): Promise<string> {
  const page = artifactKeys.report(root);
  const html = (await store.get(page)).toString('utf8');
  const local = (key: string) => join(folder, ...checkKey(key).split('/'));
  for (const key of linkedKeys(page, html)) await store.getFile(key, local(key));
  await store.getFile(page, local(page));
  return local(page);
}
