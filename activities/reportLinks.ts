/**
 * Links from the report to other artifacts, relative to the report's own key. Both stores lay
 * keys out as the same `/`-separated path (a local folder's files; an S3 bucket's objects under
 * a path-style URL), so one relative URL reaches the artifact from the report opened in either.
 * Pure.
 */

/**
 * The URL of the artifact at key `target`, relative to the page stored at key `page`. Each
 * segment is percent-encoded, since keys hold `%` themselves (an encoded workflow id) and a
 * browser decodes a URL before it looks the file or object up.
 */
export function relativeUrl(page: string, target: string): string {
  const folder = page.split('/').slice(0, -1);
  const path = target.split('/');
  let common = 0;
  while (common < folder.length && common < path.length - 1 && folder[common] === path[common]) common++;
  return [...folder.slice(common).map(() => '..'), ...path.slice(common).map(encodeURIComponent)].join('/');
}
