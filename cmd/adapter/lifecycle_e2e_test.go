package main

// End-to-end tests of adapter run's start and shutdown: the adapter as a
// process against the machine's RabbitMQ and, for the drain, the local
// Maestro server (`eval "$(deploy/local/maestro.sh env)"`) with the
// simulated agent of maestro/maestrotest standing in for a cluster's agent
// (a real agent needs a kube-apiserver per cluster; the stand-in reports
// through the same Maestro server, after a delay the test chooses).

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// SIGTERM with events in flight: the agent reports 3 s after it gets each
// work, well inside DRAIN_TIMEOUT (30 s). The tracker must stay live through
// the drain, so the process exits soon after the agent reports, not at the
// drain deadline; every in-flight event is reported once, with the agent's
// real status, and acknowledged; nothing goes back to the queue.
func TestSIGTERMDrainsInFlightEventsWithRealStatus(t *testing.T) {
	env := maestrotest.Require(t)
	r := newBrokerRig(t)
	consumer := randomName("drain")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, consumer); err != nil {
		t.Fatal(err)
	}
	const agentDelay, drainTimeout = 3 * time.Second, 30 * time.Second
	// The stand-in: the test needs the agent to answer only after agentDelay, so
	// events are in flight at SIGTERM; the real agent cannot be told to wait.
	agent, err := maestrotest.StartAgent(context.Background(), env.GRPCBrokerEndpoint, consumer, maestrotest.AgentOptions{
		Delay: agentDelay, Logf: maestrotest.TestLogf(t, "agent: "),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Stop)

	vars := r.env(
		"DELIVERY=maestro", "MAESTRO_GRPC_ENDPOINT="+env.GRPCEndpoint, "MAESTRO_HTTP_ENDPOINT="+env.HTTPEndpoint,
		"MAESTRO_SOURCE_ID="+randomName("drain-src"), "CONSUMER_RULE=fixed:"+consumer,
		"STATUS_TIMEOUT=60s", fmt.Sprintf("DRAIN_TIMEOUT=%s", drainTimeout))
	p := startAdapter(t, "a", vars, "run")
	waitFor(t, 30*time.Second, "the adapter to consume", func() bool { _, c := r.queueState(); return c == 1 })

	var clusters []string
	for i := range 4 {
		id := fmt.Sprintf("019466a0-0000-7000-a000-%012d", i)
		clusters = append(clusters, id)
		r.publish(fmt.Sprintf("drain-%d", i), id, 1)
	}
	// In flight: every work delivered to the agent, none reported yet (the
	// agent waits agentDelay before it reports).
	waitFor(t, 30*time.Second, "the agent to hold every work", func() bool { return len(agent.Works()) == len(clusters) })
	for _, c := range clusters {
		if n := r.reportCount(c); n != 0 {
			t.Fatalf("cluster %s reported before SIGTERM (%d reports): the events were not in flight", c, n)
		}
	}
	sent := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	// Soon after the agent reports: far inside the drain deadline.
	select {
	case <-p.done:
	case <-time.After(drainTimeout / 2):
		t.Fatalf("still running %s after SIGTERM: the drain waits for its deadline", drainTimeout/2)
	}
	took := time.Since(sent)
	t.Logf("exited %s after the signal (agent delay %s, DRAIN_TIMEOUT %s)", took.Round(time.Millisecond), agentDelay, drainTimeout)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}

	settled := p.settled(t)
	for i := range clusters {
		if o := settled[fmt.Sprintf("drain-%d", i)]; o != "reconciled" {
			t.Errorf("event drain-%d settled %q, want reconciled", i, o)
		}
	}
	if log, _ := os.ReadFile(p.log); strings.Contains(string(log), "giving event back") {
		t.Error("an event went back to the broker during a drain that had time for it")
	}
	// Every report the process published was confirmed before it exited;
	// wait for the collector to have them all, then count.
	waitFor(t, 30*time.Second, "the status queue to be drained", func() bool { return r.collectorBacklog() == 0 })
	waitFor(t, 30*time.Second, "a report of every cluster", func() bool { return r.reconciledAt(clusters, 1) })
	for _, c := range clusters {
		reps := r.reportsOf(c)
		if len(reps) != 1 {
			t.Errorf("cluster %s: %d status events, want exactly 1", c, len(reps))
			continue
		}
		for _, cond := range []string{hyperfleet.ConditionApplied, hyperfleet.ConditionAvailable, hyperfleet.ConditionHealth} {
			if got := reps[0].Condition(cond); got == nil || got.Status != hyperfleet.True {
				t.Errorf("cluster %s: %s = %+v, want True", c, cond, got)
			}
		}
	}
	if msgs, consumers := r.queueState(); msgs != 0 || consumers != 0 {
		t.Errorf("queue after the exit: %d messages, %d consumers; want 0, 0", msgs, consumers)
	}
	if n := r.deadLettered(); n != 0 {
		t.Errorf("%d messages dead-lettered", n)
	}
}

// A configuration error is found before any broker connection: the queue
// keeps its messages, none ever delivered to a consumer, and the process
// exits 2 naming the variable. Also a busy HEALTH_ADDR, and DELIVERY unset.
func TestBadConfigurationLeavesTheQueueUntouched(t *testing.T) {
	r := newBrokerRig(t)
	// A first adapter declares the topology, as a previous deployment
	// would have, then stops; the messages published after wait for the
	// next one.
	first := startAdapter(t, "declare", r.env(), "run")
	waitFor(t, 30*time.Second, "the first adapter to consume", func() bool { _, c := r.queueState(); return c == 1 })
	if code := first.stop(t, 20*time.Second); code != 0 {
		t.Fatalf("first adapter exit %d", code)
	}
	waitFor(t, 10*time.Second, "the first adapter's consumer to go", func() bool { _, c := r.queueState(); return c == 0 })
	const queued = 3
	for i := range queued {
		r.publish(fmt.Sprintf("waiting-%d", i), fmt.Sprintf("019466a0-0000-7000-b000-%012d", i), 1)
	}
	waitFor(t, 10*time.Second, "the messages to be queued", func() bool { m, _ := r.queueState(); return m == queued })

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	without := func(vars []string, key string) []string {
		var out []string
		for _, v := range vars {
			if !strings.HasPrefix(v, key+"=") {
				out = append(out, v)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"bad ADAPTER_TYPE", r.env("ADAPTER_TYPE=nope"), []string{"ADAPTER_TYPE (--adapter)", `"nope" is not an adapter type`}},
		{"busy HEALTH_ADDR", r.env("HEALTH_ADDR=" + busy.Addr().String()), []string{"HEALTH_ADDR:", "address already in use"}},
		{"DELIVERY unset", append(without(r.env(), "DELIVERY"), "DELIVERY="), []string{"DELIVERY (--delivery): not set", "maestro", "job", "embedded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startAdapter(t, "bad", tc.env, "run")
			maxConsumers := 0
			exited := false
			waitFor(t, 30*time.Second, "the process to exit", func() bool {
				_, c := r.queueState()
				maxConsumers = max(maxConsumers, c)
				select {
				case <-p.done:
					exited = true
				default:
				}
				return exited
			})
			if code := p.cmd.ProcessState.ExitCode(); code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			out, _ := os.ReadFile(p.log)
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), "rabbitmq") {
				t.Errorf("the adapter talked to the broker before refusing its configuration:\n%s", out)
			}
			if maxConsumers != 0 {
				t.Errorf("a consumer attached (%d seen)", maxConsumers)
			}
			if m, _ := r.queueState(); m != queued {
				t.Errorf("%d messages on the queue, want %d", m, queued)
			}
		})
	}
	// None of the messages was ever handed to a consumer: a delivery, even
	// one given back unacknowledged, would have marked it redelivered.
	redelivered, got := r.takeAll(t)
	if got != queued || redelivered != 0 {
		t.Fatalf("took %d messages (%d redelivered), want %d never delivered", got, redelivered, queued)
	}
}

func (r *brokerRig) reportsOf(resourceID string) []hyperfleet.StatusReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hyperfleet.StatusReport(nil), r.reports[resourceID]...)
}

func (r *brokerRig) reportCount(resourceID string) int { return len(r.reportsOf(resourceID)) }

// passive is the state of queue q (zero when it does not exist).
func (r *brokerRig) passive(q string) amqp.Queue {
	ch, err := r.conn.Channel()
	if err != nil {
		return amqp.Queue{}
	}
	defer ch.Close()
	st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		return amqp.Queue{}
	}
	return st
}

// collectorBacklog is how many status events wait for the collector.
func (r *brokerRig) collectorBacklog() int { return r.passive(r.statusTopic + "-collector").Messages }

// deadLettered is how many messages the dead-letter queue holds.
func (r *brokerRig) deadLettered() int { return r.passive(r.topic + "-" + r.sub + ".dlq").Messages }

// takeAll takes every message off the shared queue and counts those the
// broker marks redelivered (handed to a consumer before).
func (r *brokerRig) takeAll(t *testing.T) (redelivered, total int) {
	t.Helper()
	ch, err := r.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for {
		d, ok, err := ch.Get(r.topic+"-"+r.sub, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return redelivered, total
		}
		total++
		if d.Redelivered {
			redelivered++
		}
	}
}
