/**
 * Prompt and caption text rules: which class a sentence names, and how many of it.
 * Words are lower-cased runs of letters and digits, so punctuation never hides a match.
 */

export function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9]+/g) ?? [];
}

/** English regular plural of one word; irregular nouns belong in the synonyms configuration. */
export function pluralWord(word: string): string {
  if (/(s|x|z|ch|sh)$/.test(word)) return `${word}es`;
  if (/[^aeiou]y$/.test(word)) return `${word.slice(0, -1)}ies`;
  return `${word}s`;
}

/** A multi-word name is pluralised on its head noun, the last word ("traffic light" → "traffic lights"). */
export function pluralName(name: string): string {
  const parts = words(name);
  if (parts.length === 0) return '';
  parts[parts.length - 1] = pluralWord(parts[parts.length - 1]!);
  return parts.join(' ');
}

/** Every word sequence that counts as naming the class: the name, its synonyms, and their plurals. */
export function classForms(className: string, synonyms: readonly string[]): string[][] {
  const names = [className, ...synonyms];
  const forms = names.flatMap((name) => [words(name).join(' '), pluralName(name)]);
  return [...new Set(forms)].filter((form) => form.length > 0).map((form) => form.split(' '));
}

/** Word index where the first mention of the class starts, or -1. */
export function findClass(text: string, className: string, synonyms: readonly string[]): number {
  const tokens = words(text);
  const forms = classForms(className, synonyms);
  for (let i = 0; i < tokens.length; i++) {
    if (forms.some((form) => form.every((w, k) => tokens[i + k] === w))) return i;
  }
  return -1;
}

export function namesClass(text: string, className: string, synonyms: readonly string[]): boolean {
  return findClass(text, className, synonyms) >= 0;
}

const COUNT_WORDS: ReadonlyMap<string, number> = new Map([
  ['a', 1],
  ['an', 1],
  ['one', 1],
  ['single', 1],
  ['two', 2],
  ['three', 3],
  ['four', 4],
  ['five', 5],
  ['six', 6],
  ['seven', 7],
  ['eight', 8],
  ['nine', 9],
  ['ten', 10],
]);

/** How far before the class noun a count word may stand: room for a few adjectives ("two small red stars"). */
const COUNT_WINDOW = 3;

/**
 * The number of class instances the text states: the count word closest before the first
 * mention of the class, within COUNT_WINDOW words. Null when it states none ("stars on grass")
 * or does not name the class, because then there is nothing to check a detector count against.
 */
export function statedCount(text: string, className: string, synonyms: readonly string[]): number | null {
  const at = findClass(text, className, synonyms);
  if (at < 0) return null;
  const tokens = words(text);
  for (let i = at - 1; i >= Math.max(0, at - COUNT_WINDOW); i--) {
    const token = tokens[i]!;
    const count = COUNT_WORDS.get(token) ?? (/^\d+$/.test(token) ? Number(token) : undefined);
    if (count !== undefined) return count;
  }
  return null;
}

/**
 * Caption–prompt similarity as the Dice coefficient of their word sets, in [0, 1].
 * Token overlap rather than an embedding: it needs no model, is exact to reproduce, and the
 * judge's CLIP score already measures image–prompt agreement in embedding space.
 */
export function tokenOverlap(a: string, b: string): number {
  const left = new Set(words(a));
  const right = new Set(words(b));
  if (left.size + right.size === 0) return 0;
  let shared = 0;
  for (const w of left) if (right.has(w)) shared++;
  return (2 * shared) / (left.size + right.size);
}

/** The configured attribute words (colours) the prompt uses; the caption is checked for each. */
export function attributesIn(text: string, vocabulary: readonly string[]): string[] {
  const tokens = new Set(words(text));
  return vocabulary.filter((w) => tokens.has(w.toLowerCase()));
}
