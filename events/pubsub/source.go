package pubsub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	gpubsub "cloud.google.com/go/pubsub/v2"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// Attribute names. The dead-letter ones match the RabbitMQ headers.
const (
	// AttrMessageUUID is the library's only attribute: the event id.
	AttrMessageUUID = "_watermill_message_uuid"
	// AttrContentType is the attribute the CloudEvents SDK reads to tell
	// structured mode.
	AttrContentType = "Content-Type"

	AttrDeadLetterReason     = "x-hyperfleet-dead-letter-reason"
	AttrAttempts             = "x-hyperfleet-attempts"
	AttrOriginalSubscription = "x-hyperfleet-original-subscription"
	AttrOriginalMessageID    = "x-hyperfleet-original-message-id"
	AttrDeadLetteredAt       = "x-hyperfleet-dead-lettered-at"
)

const (
	contentTypeCloudEventsJSON = "application/cloudevents+json"
	// maxAttributeValueBytes is Pub/Sub's limit; a longer reason would
	// make the dead-letter publish itself fail.
	maxAttributeValueBytes   = 1024
	deadLetterReasonEllipsis = "..."
	deadLetterReasonMaxBytes = maxAttributeValueBytes - len(deadLetterReasonEllipsis)
	maxTrackedMessages       = 10000
)

// ErrClosed is what Receive returns once the Source is closed. It wraps
// io.EOF: for the pipeline a closed source is an exhausted one.
var ErrClosed = fmt.Errorf("pubsub source closed: %w", io.EOF)

// ErrAbandoned is returned when a message is settled after the Source's
// shutdown grace ran out: it has been nacked and will be redelivered, so
// the caller has nothing to undo. It is Transient.
var ErrAbandoned = failure.Transient(errors.New("the source was closed and its grace period ended; the message was nacked for redelivery"))

// ErrAlreadySettled is returned by a second Ack, Requeue or DeadLetter of
// one message.
var ErrAlreadySettled = failure.Permanent(errors.New("message already settled"))

// Source consumes one Pub/Sub subscription. See the package documentation.
type Source struct {
	cfg        SourceConfig
	log        *slog.Logger
	sub        *gpubsub.Subscriber
	deadLetter *gpubsub.Publisher
	dlTopic    string

	out     chan *events.Message
	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	abandon chan struct{} // closed when the shutdown grace ends
	stopped chan struct{} // closed when Receive has returned for good

	closeOnce sync.Once
	attempts  *events.AttemptCounter
	// receiveErr is why the last Receive call ended, until a message
	// arrives again.
	receiveErr atomic.Pointer[error]
}

var _ events.Source = (*Source)(nil)

// NewSource validates cfg, finds or creates the subscription (see
// SourceConfig.CreateSubscriptionIfMissing) and its dead-letter topic, and
// starts receiving.
func NewSource(ctx context.Context, cfg SourceConfig) (*Source, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, failure.Permanent(err)
	}
	log := cfg.Logger.With("subscription", cfg.SubscriptionID, "topic", cfg.Topic)
	dlTopic, err := ensureSubscription(ctx, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("pubsub source %s: %w", cfg.SubscriptionID, err)
	}
	if err := ensureDeadLetterStore(ctx, cfg, dlTopic, log); err != nil {
		return nil, fmt.Errorf("pubsub source %s: %w", cfg.SubscriptionID, err)
	}
	sub := cfg.Client.Subscriber(cfg.SubscriptionID)
	sub.ReceiveSettings.MaxOutstandingMessages = cfg.MaxOutstandingMessages
	if cfg.MaxOutstandingBytes > 0 {
		sub.ReceiveSettings.MaxOutstandingBytes = cfg.MaxOutstandingBytes
	}
	if cfg.NumGoroutines > 0 {
		sub.ReceiveSettings.NumGoroutines = cfg.NumGoroutines
	}
	s := &Source{
		cfg:        cfg,
		log:        log,
		sub:        sub,
		deadLetter: cfg.Client.Publisher(dlTopic),
		dlTopic:    dlTopic,
		out:        make(chan *events.Message),
		abandon:    make(chan struct{}),
		stopped:    make(chan struct{}),
		attempts:   events.NewAttemptCounter(maxTrackedMessages),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	log.Info("pubsub: receiving", "max_outstanding_messages", cfg.MaxOutstandingMessages, "dead_letter_topic", dlTopic)
	return s, nil
}

// Receive returns the next message. It blocks until a message arrives, ctx
// ends, or the Source is closed (ErrClosed).
func (s *Source) Receive(ctx context.Context) (*events.Message, error) {
	return events.Next(ctx, s.ctx.Done(), s.out, ErrClosed)
}

// Close stops intake: Receive returns ErrClosed from now on, and pulled
// messages not yet handed out are nacked. Messages already handed
// out can still be settled for ShutdownGrace; then they are nacked for
// redelivery.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		time.AfterFunc(s.cfg.ShutdownGrace, func() { close(s.abandon) })
		go func() {
			<-s.stopped
			s.deadLetter.Stop()
		}()
	})
	return nil
}

// Ready reports whether the Source is receiving, for readiness probes: an
// error after Close, or while Receive is failing and being retried.
func (s *Source) Ready() error {
	select {
	case <-s.ctx.Done():
		return ErrClosed
	default:
	}
	if err := s.receiveErr.Load(); err != nil {
		return fmt.Errorf("pubsub: not receiving from %s: %w", s.cfg.SubscriptionID, *err)
	}
	return nil
}

// run calls Receive until Close, retrying with backoff when the service
// ends it with an error (the client already retries transient stream
// errors itself).
func (s *Source) run() {
	defer close(s.stopped)
	for failures := 1; ; failures++ {
		err := s.sub.Receive(s.ctx, s.handle)
		if s.ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("Receive returned without an error")
		}
		s.receiveErr.Store(&err)
		wait := backoff.Delay(s.cfg.ReceiveRetryInitial, s.cfg.ReceiveRetryMax, failures)
		s.log.Error("pubsub: receiving stopped; retrying", "error", err, "retry_in", wait)
		if backoff.Sleep(s.ctx, wait) != nil {
			return
		}
	}
}

// handle bridges one callback to Receive: it hands the message over, then
// keeps the callback (and so the client's lease extension) alive until the
// message is settled or the shutdown grace ends.
func (s *Source) handle(ctx context.Context, pm *gpubsub.Message) {
	s.receiveErr.Store(nil)
	st := &settler{s: s, pm: pm, receivedAt: time.Now(), done: make(chan struct{})}
	attempt := s.attempts.Seen(pm.ID)
	if pm.DeliveryAttempt != nil && *pm.DeliveryAttempt > attempt {
		attempt = *pm.DeliveryAttempt
	}
	m := &events.Message{
		TransportID: pm.ID,
		Body:        pm.Data,
		Attributes:  maps.Clone(pm.Attributes),
		Attempt:     attempt,
		ReceivedAt:  st.receivedAt,
		Settler:     st,
	}
	if m.Attributes == nil {
		m.Attributes = map[string]string{}
	}
	select {
	case s.out <- m:
	case <-s.ctx.Done():
		nack(context.Background(), pm, st.receivedAt)
		return
	case <-ctx.Done():
		nack(context.Background(), pm, st.receivedAt)
		return
	}
	select {
	case <-st.done:
	case <-s.abandon:
		if st.settled.CompareAndSwap(false, true) {
			st.abandoned.Store(true)
			nack(context.Background(), pm, st.receivedAt)
			return
		}
		<-st.done // a settle in progress finishes first
	}
}

// settler settles one message; exactly one of its methods succeeds once.
type settler struct {
	s          *Source
	pm         *gpubsub.Message
	receivedAt time.Time
	done       chan struct{}
	settled    atomic.Bool
	abandoned  atomic.Bool
}

func (st *settler) claim(op string) error {
	if st.settled.CompareAndSwap(false, true) {
		return nil
	}
	if st.abandoned.Load() {
		return fmt.Errorf("pubsub: %s of message %s: %w", op, st.pm.ID, ErrAbandoned)
	}
	return fmt.Errorf("pubsub: %s of message %s: %w", op, st.pm.ID, ErrAlreadySettled)
}

func (st *settler) finish() { close(st.done) }

func (st *settler) result(ctx context.Context, op string, r *gpubsub.AckResult) error {
	if _, err := r.Get(ctx); err != nil {
		return classify(fmt.Errorf("pubsub: %s of message %s on %s: %w", op, st.pm.ID, st.s.cfg.SubscriptionID, err))
	}
	return nil
}

// Ack acknowledges the message and, on an exactly-once subscription, waits
// for the service to confirm.
func (st *settler) Ack(ctx context.Context) error {
	if err := st.claim("ack"); err != nil {
		return err
	}
	defer st.finish()
	if err := st.result(ctx, "ack", st.pm.AckWithResult()); err != nil {
		return err
	}
	st.s.attempts.Forget(st.pm.ID)
	return nil
}

// Requeue nacks the message: the service redelivers it, after the
// subscription's retry backoff if it has one.
func (st *settler) Requeue(ctx context.Context, reason string) error {
	if err := st.claim("requeue"); err != nil {
		return err
	}
	defer st.finish()
	st.s.log.Debug("pubsub: requeued", "message", st.pm.ID, "reason", reason)
	waitForReceipt(ctx, st.receivedAt)
	return st.result(ctx, "nack", st.pm.NackWithResult())
}

// DeadLetter publishes the message to the dead-letter topic, waits for the
// publish, then acknowledges it. If the publish fails nothing is
// acknowledged: the message is nacked after DeadLetterRetryDelay and the
// error says so.
func (st *settler) DeadLetter(ctx context.Context, reason string, attempts int) error {
	if err := st.claim("dead-letter"); err != nil {
		return err
	}
	s := st.s
	attrs := make(map[string]string, len(st.pm.Attributes)+5)
	maps.Copy(attrs, st.pm.Attributes)
	attrs[AttrDeadLetterReason] = truncate(reason)
	attrs[AttrAttempts] = strconv.Itoa(attempts)
	attrs[AttrOriginalSubscription] = subscriptionName(s.cfg.Client.Project(), s.cfg.SubscriptionID)
	attrs[AttrOriginalMessageID] = st.pm.ID
	attrs[AttrDeadLetteredAt] = time.Now().UTC().Format(time.RFC3339Nano)
	res := s.deadLetter.Publish(ctx, &gpubsub.Message{Data: st.pm.Data, Attributes: attrs})
	if _, err := res.Get(ctx); err != nil {
		pm := st.pm
		time.AfterFunc(s.cfg.DeadLetterRetryDelay, func() {
			nack(context.Background(), pm, st.receivedAt)
			st.finish()
		})
		return failure.Transient(fmt.Errorf("pubsub: dead-letter message %s to %s: %w; the message was not acknowledged and is nacked in %s",
			st.pm.ID, s.dlTopic, err, s.cfg.DeadLetterRetryDelay))
	}
	defer st.finish()
	if err := st.result(ctx, "ack after dead-lettering", st.pm.AckWithResult()); err != nil {
		// The dead letter is stored; the original comes back and will be
		// dead-lettered again: a duplicate dead letter, nothing lost.
		return err
	}
	s.attempts.Forget(st.pm.ID)
	s.log.Info("pubsub: dead-lettered", "message", st.pm.ID, "dead_letter_topic", s.dlTopic, "attempts", attempts, "reason", reason)
	return nil
}

// receiptWindow covers a race in the Pub/Sub client: it acknowledges the
// receipt of a message with a deadline extension batched on a 100ms ticker,
// and in one batch sends nacks before receipts. A nack within that window
// can reach the service before the receipt extension, which then revives
// the lease: the message comes back only after the ack deadline (10s or
// more) instead of at once. Waiting out the window keeps Requeue prompt.
const receiptWindow = 250 * time.Millisecond

func waitForReceipt(ctx context.Context, receivedAt time.Time) {
	wait := time.Until(receivedAt.Add(receiptWindow))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func nack(ctx context.Context, pm *gpubsub.Message, receivedAt time.Time) {
	waitForReceipt(ctx, receivedAt)
	pm.Nack()
}

func truncate(s string) string {
	if len(s) <= maxAttributeValueBytes {
		return s
	}
	cut := deadLetterReasonMaxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + deadLetterReasonEllipsis
}
