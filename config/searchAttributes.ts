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
