// Package nats carries commands and recorded events over NATS: a
// request/reply command bus (Bus, Serve), the JetStream stream that relays
// recorded events to subscribers such as the history writer (Publisher,
// Consume), and an embedded nats-server for the one-command setup
// (StartEmbedded).
//
// Subjects:
//
//	event.<domain>.<entity>.<command>     command requests; writers of a domain
//	                                      form the queue group "writers.<domain>"
//	recorded.<domain>.<entity>.<command>  every recorded attempt, published to
//	                                      the JetStream stream UNEVENTFUL_EVENTS
//	                                      with the event_id as message id
package nats
