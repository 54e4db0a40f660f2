package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// settler settles one delivery; exactly one of its methods succeeds once.
type settler struct {
	s       *Source
	sess    *session
	d       amqp.Delivery
	key     string
	settled atomic.Bool
}

func (st *settler) claim(op string) error {
	if !st.settled.CompareAndSwap(false, true) {
		return fmt.Errorf("rabbitmq: %s of delivery %d: %w", op, st.d.DeliveryTag, ErrAlreadySettled)
	}
	return nil
}

func (st *settler) failed(op string, err error) error {
	if errors.Is(err, amqp.ErrClosed) || st.sess.dead() {
		return fmt.Errorf("rabbitmq: %s of delivery %d from queue %s: %w", op, st.d.DeliveryTag, st.s.cfg.Queue, ErrChannelClosed)
	}
	return classify(fmt.Errorf("rabbitmq: %s of delivery %d from queue %s: %w", op, st.d.DeliveryTag, st.s.cfg.Queue, err))
}

// Ack acknowledges the delivery.
func (st *settler) Ack(context.Context) error {
	if err := st.claim("ack"); err != nil {
		return err
	}
	defer st.sess.release()
	if st.sess.dead() {
		return st.failed("ack", amqp.ErrClosed)
	}
	if err := st.d.Ack(false); err != nil {
		return st.failed("ack", err)
	}
	st.s.attempts.Forget(st.key)
	return nil
}

// Requeue returns the delivery to the queue (basic.nack, requeue): the
// broker redelivers it at once, to this or another consumer. Any delay
// between attempts is the caller's to add before calling.
func (st *settler) Requeue(_ context.Context, reason string) error {
	if err := st.claim("requeue"); err != nil {
		return err
	}
	defer st.sess.release()
	if st.sess.dead() {
		return st.failed("requeue", amqp.ErrClosed)
	}
	if err := st.d.Nack(false, true); err != nil {
		return st.failed("requeue", err)
	}
	st.s.log.Debug("rabbitmq: requeued", "delivery", st.d.DeliveryTag, "reason", reason)
	return nil
}

// DeadLetter publishes the message to the dead-letter exchange, waits for
// the confirm, then acknowledges the original. If the publish fails nothing
// is acknowledged: the message is requeued after DeadLetterRetryDelay and
// the error says so.
func (st *settler) DeadLetter(ctx context.Context, reason string, attempts int) error {
	if err := st.claim("dead-letter"); err != nil {
		return err
	}
	if st.sess.dead() {
		st.sess.release()
		return st.failed("dead-letter", amqp.ErrClosed)
	}
	cfg := st.s.cfg
	d := &st.d
	headers := make(amqp.Table, len(d.Headers)+7)
	for k, v := range d.Headers {
		headers[k] = v
	}
	headers[HeaderDeadLetterReason] = truncateReason(reason)
	headers[HeaderAttempts] = strconv.Itoa(attempts)
	headers[HeaderOriginalExchange] = d.Exchange
	headers[HeaderOriginalRoutingKey] = d.RoutingKey
	headers[HeaderOriginalQueue] = cfg.Queue
	headers[HeaderDeadLetteredAt] = time.Now().UTC().Format(time.RFC3339Nano)
	// User-id is checked against the connection's user and expiration would
	// let the dead letter vanish: neither is carried over.
	p := amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
	if err := st.sess.publishDeadLetter(ctx, cfg, p); err != nil {
		sess, dd := st.sess, st.d
		time.AfterFunc(cfg.DeadLetterRetryDelay, func() {
			_ = dd.Nack(false, true)
			sess.release()
		})
		return failure.Transient(fmt.Errorf("rabbitmq: dead-letter delivery %d to %s: %w; the message was not acknowledged and is requeued in %s",
			d.DeliveryTag, cfg.DeadLetterExchange(), err, cfg.DeadLetterRetryDelay))
	}
	defer st.sess.release()
	if err := d.Ack(false); err != nil {
		// The dead letter is stored; the original comes back and will be
		// dead-lettered again: a duplicate in the dead-letter queue, nothing
		// lost.
		return st.failed("ack after dead-lettering", err)
	}
	st.s.attempts.Forget(st.key)
	st.s.log.Info("rabbitmq: dead-lettered", "delivery", d.DeliveryTag, "dead_letter_queue", cfg.DeadLetterQueue(), "attempts", attempts, "reason", reason)
	return nil
}
