/** The broker core: topic rules, routing and delivery. Knows nothing of sockets or wire frames. */
export {
  MAX_TOPIC_BYTES,
  isValidPattern,
  isValidTopic,
  matchesPattern,
  validatePattern,
  validateTopic,
} from './topic.ts';
export { Router, type MatchResult, type RouteEntry, type RouterOptions } from './router.ts';
export {
  PubSub,
  type PubSubMessage,
  type PubSubOptions,
  type Subscriber,
  type Subscription,
} from './pubsub.ts';
