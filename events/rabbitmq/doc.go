// Package rabbitmq consumes Sentinel events from RabbitMQ (Source) and
// publishes status events to it (Publisher), on the topology the HyperFleet
// broker library (hyperfleet-broker v1.1.1, watermill-amqp underneath)
// declares, so that the adapter shares queues with existing consumers and
// Sentinel's exchange without a single PRECONDITION_FAILED.
//
// # Topology
//
// Declared exactly as the library's NewDurablePubSubConfig does, in its
// order (queue, exchange, binding), with no arguments:
//
//   - exchange {topic} (or broker.rabbitmq.exchange): durable, not
//     auto-deleted, not internal, type from broker.rabbitmq.exchange_type
//     (topic by default here; the library's default is fanout);
//   - queue {topic}-{subscriptionID} (or {queue}-{subscriptionID}): durable,
//     not auto-deleted, not exclusive, no x-arguments;
//   - binding of the queue to the exchange with routing key "".
//
// Consumption is manual-ack with a prefetch sized to the adapter's
// concurrency. Replicas with one subscription ID share the queue.
//
// # Dead letters
//
// The shared queue cannot get an x-dead-letter-exchange argument (that would
// change its declaration), so the adapter dead-letters by itself: it
// declares a durable fanout exchange {queue}.dlx and a durable queue
// {queue}.dlq bound to it, publishes the original body and headers there
// with the headers x-hyperfleet-dead-letter-reason, x-hyperfleet-attempts,
// x-hyperfleet-original-exchange, x-hyperfleet-original-routing-key,
// x-hyperfleet-original-queue and x-hyperfleet-dead-lettered-at (all strings,
// so watermill-based readers accept them), waits for the publisher confirm,
// and only then acknowledges the original. A failed dead-letter publish
// acknowledges nothing: the message is requeued after a delay.
//
// # Attempts
//
// Classic queues (what the library declares) carry no delivery count: a
// requeued message comes back with only the redelivered flag. Attempt is
// therefore the largest of: the broker's x-delivery-count + 1 (quorum
// queues), this process's own count of deliveries of the message (keyed by
// _watermill_message_uuid, else the AMQP message id, else the body's hash),
// and 2 when the redelivered flag is set.
//
// # Reconnection
//
// When the connection or a channel drops, the Source reconnects with
// exponential backoff, declares the topology again and resumes; Receive
// keeps blocking meanwhile. The broker redelivers whatever was unacked on
// the dead channel, so settling a message from it fails with
// ErrChannelClosed and nothing else is needed.
//
// # Wire form of published events
//
// Publisher sends what Sentinel sends (the whole CloudEvent as JSON in the
// body, header _watermill_message_uuid = event id, persistent delivery mode)
// plus the AMQP content-type property application/cloudevents+json and the
// message-id property. The content-type makes CloudEvents-SDK consumers read
// it as structured mode; the library's consumer reads only the body and the
// headers table, so it is unaffected. Every publish waits for the broker's
// confirm.
package rabbitmq
