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

/** The page's `src="..."` attribute values, as the page escaped them (`escapeHtml` writes `&#NN;`). */
const SOURCES = /<img [^>]*?src="([^"]*)"/g;

/**
 * The keys of the artifacts the page stored at key `page` shows as images: its relative links
 * resolved against the page's own key, the inverse of `relativeUrl`. What a copy of the report
 * needs beside it for its images to show.
 */
export function linkedKeys(page: string, html: string): string[] {
  const base = `http://store/${page.split('/').map(encodeURIComponent).join('/')}`;
  const keys = new Set<string>();
  for (const [, escaped] of html.matchAll(SOURCES)) {
    const src = escaped!.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)));
    const url = new URL(src, base);
    // Only links into the store: an absolute or data: URL is not an artifact.
    if (url.origin !== 'http://store') continue;
    keys.add(url.pathname.slice(1).split('/').map(decodeURIComponent).join('/'));
  }
  return [...keys].sort();
}
