// Package pubsub consumes Sentinel events from Google Pub/Sub (Source) and
// publishes status events to it (Publisher), on the resources the HyperFleet
// broker library (hyperfleet-broker v1.1.1, watermill-googlecloud underneath)
// uses: the subscription is named after the subscription ID, replicas that
// share it are one consumer group, and subscriptions it creates carry a
// dead-letter policy to {subscriptionID}-dlq.
//
// # Why not the CloudEvents SDK receiver
//
// The Source uses the Pub/Sub client's Receive directly and bridges each
// callback to Receive()/Settler. The CloudEvents SDK's Pub/Sub protocol
// (github.com/cloudevents/sdk-go/protocol/pubsub/v2) would hide what this
// package needs:
//
//   - the wire form: its message recognises only binary mode (ce-*
//     attributes) and structured mode (a Content-Type attribute); Sentinel's
//     messages, published through the HyperFleet library, are neither (the
//     whole event JSON in the body, only a _watermill_message_uuid
//     attribute), so it reports "unknown Message encoding" and nacks them:
//     a redelivery loop. Here body and attributes go to events.Decoder
//     unchanged, and it accepts all three forms;
//   - settling: its Finish only acks or nacks, fire and forget; here Ack
//     and Requeue wait for the service's result, and DeadLetter publishes
//     the message with its reason before acknowledging it;
//   - the subscription: it creates one without a dead-letter policy, retry
//     policy or expiration; here it is created as the library creates it;
//   - shutdown and attempts: its receive callback returns once the message
//     is queued, drops one it could not queue when its context ends without
//     nacking it, and its Close does nothing; here Close nacks unsettled
//     messages after a grace period, and Attempt follows DeliveryAttempt,
//     which its message does not expose.
//
// The tests use that protocol as the reference for the other side: events
// a CloudEvents SDK publisher writes in binary and structured mode are
// received, and the status events the Publisher writes read as structured
// mode through it.
//
// # Settling
//
// Ack and Requeue wait for the service's answer (AckWithResult,
// NackWithResult), which is immediate unless the subscription has
// exactly-once delivery. DeadLetter publishes the message with the
// attributes x-hyperfleet-dead-letter-reason, x-hyperfleet-attempts,
// x-hyperfleet-original-subscription, x-hyperfleet-original-message-id and
// x-hyperfleet-dead-lettered-at to the dead-letter topic itself, waits for
// the publish, and then acknowledges: the subscription's own dead-letter
// policy moves a message only after max_delivery_attempts deliveries and
// records no reason (and pstest has no retry backoff). The pipeline's own
// attempt budget should stay below the subscription's maximum so that its
// dead letters, with their reasons, come first.
//
// # Attempts
//
// Attempt is the message's DeliveryAttempt, which the service fills when
// the subscription has a dead-letter policy; without one, this process's
// own count of deliveries of the message ID.
//
// # Wire form of published events
//
// Publisher sends the whole CloudEvent as JSON in the data (the library's
// form, so HyperFleet-library consumers read it), the attribute
// _watermill_message_uuid = event id, and the attribute Content-Type
// application/cloudevents+json, which makes CloudEvents-SDK consumers read
// it as structured mode. Binary mode was not chosen because the library's
// consumers cannot read it. events.Decoder rejects these events by type
// should one reach an input subscription.
package pubsub
