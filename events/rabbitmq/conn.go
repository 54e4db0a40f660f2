package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/redact"
)

// ErrChannelClosed is returned when a message is settled after the channel
// it arrived on has closed (connection lost, or the Source's shutdown grace
// ran out). The broker redelivers such a message by itself, so the caller
// has nothing to undo. It is Transient.
var ErrChannelClosed = failure.Transient(errors.New("the delivery's channel is closed; the broker will redeliver the message"))

// ErrAlreadySettled is returned by a second Ack, Requeue or DeadLetter of
// one message: a bug in the caller, never worth retrying.
var ErrAlreadySettled = failure.Permanent(errors.New("message already settled"))

// dial opens a connection whose TCP connect honours ctx and whose handshake
// is bounded by timeout (amqp091 clears the deadline once the connection is
// open; heartbeats take over from there).
func dial(ctx context.Context, rawURL, name string, timeout, heartbeat time.Duration) (*amqp.Connection, error) {
	if name == "" {
		name = defaultConnectionName()
	}
	cfg := amqp.Config{
		Heartbeat:  heartbeat,
		Locale:     "en_US",
		Properties: amqp.Table{"connection_name": name, "product": "hyperfleet-maestro-adapter"},
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
				_ = conn.Close()
				return nil, err
			}
			return conn, nil
		},
	}
	conn, err := amqp.DialConfig(rawURL, cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("connect to %s: %w", redact.URL(rawURL), err))
	}
	return conn, nil
}

func defaultConnectionName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s", filepath.Base(os.Args[0]), host)
}

func newConsumerTag() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("hyperfleet-adapter-%s-%s", host, uuid.NewString()[:8])
}

// classify marks errors that no retry can fix (the broker refused our
// credentials, vhost or declarations) Permanent and the rest Transient.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused, amqp.NotFound, amqp.PreconditionFailed, amqp.NotAllowed,
			amqp.CommandInvalid, amqp.NotImplemented, amqp.SyntaxError, amqp.FrameError:
			return failure.Permanent(err)
		}
	}
	return failure.Transient(err)
}

// declareError explains a refused declaration: PRECONDITION_FAILED means the
// object exists with other settings, and the fix is in the configuration.
func declareError(what, name string, err error, hint string) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		return classify(fmt.Errorf("declare %s %q: it exists with other settings (%w); %s", what, name, err, hint))
	}
	return classify(fmt.Errorf("declare %s %q: %w", what, name, err))
}

// declareExchange declares an exchange exactly as watermill-amqp's
// DefaultTopologyBuilder does for the library's durable pub/sub config.
func declareExchange(ch *amqp.Channel, name, kind string) error {
	if err := ch.ExchangeDeclare(name, kind, true, false, false, false, nil); err != nil {
		return declareError("exchange", name, err,
			"set broker.rabbitmq.exchange_type to the existing exchange's type (the HyperFleet broker library declares fanout unless configured)")
	}
	return nil
}

// declareInputTopology declares the library's queue, exchange and binding,
// in the library's order and with its (absent) arguments.
func declareInputTopology(ch *amqp.Channel, c SourceConfig) error {
	if _, err := ch.QueueDeclare(c.Queue, true, false, false, false, nil); err != nil {
		return declareError("queue", c.Queue, err,
			"the queue must be a durable classic queue without arguments, as the HyperFleet broker library declares it")
	}
	if err := declareExchange(ch, c.Exchange, c.ExchangeType); err != nil {
		return err
	}
	if err := ch.QueueBind(c.Queue, "", c.Exchange, false, nil); err != nil {
		return classify(fmt.Errorf("bind queue %q to exchange %q: %w", c.Queue, c.Exchange, err))
	}
	return nil
}

// declareDeadLetterTopology declares the adapter's own dead-letter exchange
// and queue; the shared queue's declaration is left alone.
func declareDeadLetterTopology(ch *amqp.Channel, c SourceConfig) error {
	if err := ch.ExchangeDeclare(c.DeadLetterExchange(), "fanout", true, false, false, false, nil); err != nil {
		return declareError("dead-letter exchange", c.DeadLetterExchange(), err, "it must be a durable fanout exchange")
	}
	if _, err := ch.QueueDeclare(c.DeadLetterQueue(), true, false, false, false, nil); err != nil {
		return declareError("dead-letter queue", c.DeadLetterQueue(), err, "it must be a durable classic queue without arguments")
	}
	if err := ch.QueueBind(c.DeadLetterQueue(), "", c.DeadLetterExchange(), false, nil); err != nil {
		return classify(fmt.Errorf("bind dead-letter queue %q: %w", c.DeadLetterQueue(), err))
	}
	return nil
}
