// Package uneventful is a framework for event-sourced, CQRS domains glued
// together by NATS request/reply and pub/sub.
//
// A domain (see Domain) names its commands, decides for each command against
// the current state of one entity whether it is accepted or rejected, and
// applies accepted changes to that state. The framework does the rest: the
// HTTP server validates input and sends commands over a Bus to a writer; the
// writer (package writer) records every attempt in the event log and the state
// after each accepted change in the state log of a Store, in one durable
// transaction, then projects the new state into a ReadModel and relays the
// recorded events to the history log.
//
// The root package holds the domain-neutral types, interfaces and errors and
// imports no driver. Each technology has its own package: sqlite, memory,
// nats, http. The wallet package is the ready-made example domain.
package uneventful
