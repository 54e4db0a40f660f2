package rabbitmq_test

import (
	"context"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/events/rabbitmq"
	"github.com/openshift-hyperfleet/maestro-adapter/events/sourcetest"
)

// benchPrefetch is the prefetch of both consume benchmarks: what an adapter
// with a concurrency of 16 runs with.
const benchPrefetch = 16

// preload publishes n Sentinel events to the test's exchange, confirmed,
// outside the timer.
func preload(b *testing.B, url string, n names, count int) {
	b.Helper()
	ch := rawChannel(b, url)
	if _, err := ch.QueueDeclare(n.Queue, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := ch.ExchangeDeclare(n.Topic, "topic", true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := ch.QueueBind(n.Queue, "", n.Topic, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	body, id := sourcetest.SentinelEvent(1)
	msg := rabbitmq.SentinelPublishing(body, id)
	ctx := context.Background()
	const window = 1000 // confirms outstanding at once
	pending := make([]*amqp.DeferredConfirmation, 0, window)
	wait := func() {
		for _, dc := range pending {
			if !dc.Wait() {
				b.Fatal("preload publish nacked")
			}
		}
		pending = pending[:0]
	}
	for i := 0; i < count; i++ {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, n.Topic, "", false, false, msg)
		if err != nil {
			b.Fatal(err)
		}
		if pending = append(pending, dc); len(pending) == window {
			wait()
		}
	}
	wait()
}

// BenchmarkRabbitMQConsume is the broker's own consume+ack rate with
// amqp091 directly: one consumer, manual ack, prefetch 16. It is the
// baseline the adapter's throughput is compared against.
func BenchmarkRabbitMQConsume(b *testing.B) {
	url := requireRabbitMQ(b)
	n := newNames(b)
	preload(b, url, n, b.N)
	ch := rawChannel(b, url)
	if err := ch.Qos(benchPrefetch, 0, false); err != nil {
		b.Fatal(err)
	}
	deliveries, err := ch.Consume(n.Queue, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := <-deliveries
		if err := d.Ack(false); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSourceConsume is the same through Source: Receive, then Ack,
// with the same prefetch. Its gap to BenchmarkRabbitMQConsume is this
// package's overhead.
func BenchmarkSourceConsume(b *testing.B) {
	url := requireRabbitMQ(b)
	n := newNames(b)
	preload(b, url, n, b.N)
	cfg := sourceConfig(url, n)
	cfg.Prefetch = benchPrefetch
	src := newSource(b, cfg)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := src.Receive(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Settler.Ack(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRabbitMQPublishConfirm publishes status events one after the
// other, each waiting for its confirm: the latency a worker pays per event.
func BenchmarkRabbitMQPublishConfirm(b *testing.B) {
	url := requireRabbitMQ(b)
	n := newNames(b)
	preload(b, url, n, 0) // an exchange with a bound queue
	pub := newPublisher(b, url, n.Topic)
	ev := sourcetest.StatusEvent(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := pub.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRabbitMQPublishConfirmParallel publishes from GOMAXPROCS*4
// goroutines through one Publisher: confirms of concurrent publishes
// overlap on the one channel.
func BenchmarkRabbitMQPublishConfirmParallel(b *testing.B) {
	url := requireRabbitMQ(b)
	n := newNames(b)
	preload(b, url, n, 0)
	pub := newPublisher(b, url, n.Topic)
	ev := sourcetest.StatusEvent(b)
	ctx := context.Background()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := pub.Publish(ctx, ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
