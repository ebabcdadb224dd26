/** Custom search attributes of rounds and nights, for the Web UI's list and filters; a server registers them before rounds start. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SEARCH_ATTRIBUTES = {
  classes: defineSearchAttributeKey('SelfRewardClasses', SearchAttributeType.KEYWORD_LIST),
  round: defineSearchAttributeKey('SelfRewardRound', SearchAttributeType.INT),
  winRate: defineSearchAttributeKey('SelfRewardWinRate', SearchAttributeType.DOUBLE),
  /** The model line of a night. */
  line: defineSearchAttributeKey('SelfRewardLine', SearchAttributeType.KEYWORD),
} as const;

/** `temporal server start-dev --search-attribute NAME=Type` arguments for them. */
export const SEARCH_ATTRIBUTE_FLAGS: readonly string[] = [
  `${SEARCH_ATTRIBUTES.classes.name}=KeywordList`,
  `${SEARCH_ATTRIBUTES.round.name}=Int`,
  `${SEARCH_ATTRIBUTES.winRate.name}=Double`,
  `${SEARCH_ATTRIBUTES.line.name}=Keyword`,
];

/**
 * What the classes search attribute holds: the classes in order, as many as fit in 1,000 bytes
 * (a server refuses a value past 2 KB by default, and a round may have hundreds of classes). The
 * full list is in the round's sample manifests in the store.
 */
export function classesAttribute(classes: Iterable<string>): string[] {
  const kept: string[] = [];
  let bytes = 2;
  for (const name of [...new Set(classes)].sort()) {
    bytes += new TextEncoder().encode(JSON.stringify(name)).length + 1;
    if (bytes > 1000) break;
    kept.push(name);
  }
  return kept;
}
