package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// flagOfEnv names the flag of each environment variable remote.Options
// errors are prefixed with, so a message says what to fix on this command
// line.
var flagOfEnv = func() map[string]string {
	m := map[string]string{}
	for _, s := range settings {
		m[s.env] = "--" + s.flag
	}
	return m
}()

// options builds the Maestro client options from the globals. grpc says
// whether the command writes (or watches) and so needs the gRPC endpoint.
func (inv *invocation) options(grpc bool) (remote.Options, error) {
	g := inv.g
	if grpc && g.GRPCEndpoint == "" {
		return remote.Options{}, usageErr("--grpc-endpoint (%s) is not set: %s writes over gRPC (e.g. --grpc-endpoint maestro-grpc:8090)", envGRPCEndpoint, inv.cmd.name)
	}
	if g.HTTPEndpoint == "" {
		return remote.Options{}, usageErr("--http-endpoint (%s) is not set: %s reads over REST (e.g. --http-endpoint http://maestro:8000)", envHTTPEndpoint, inv.cmd.name)
	}
	o := remote.Options{
		HTTPEndpoint:       g.HTTPEndpoint,
		SourceID:           g.SourceID,
		CAFile:             g.CAFile,
		ClientCertFile:     g.ClientCertFile,
		ClientKeyFile:      g.ClientKeyFile,
		TokenFile:          g.TokenFile,
		InsecureSkipVerify: g.InsecureSkipVerify,
		Insecure:           g.Insecure,
		DialTimeout:        g.DialTimeout,
		UnavailableTimeout: g.UnavailableTimeout,
		Logger:             inv.clientLog,
	}
	if grpc {
		o.GRPCEndpoint = g.GRPCEndpoint
	}
	return o, nil
}

// settingsError turns remote's option errors (prefixed with environment
// variables) into a usage failure naming the flags.
func settingsError(err error) error {
	msg := err.Error()
	for env, flag := range flagOfEnv {
		msg = strings.ReplaceAll(msg, env+":", fmt.Sprintf("%s (%s):", flag, env))
	}
	msg = strings.ReplaceAll(msg, remote.EnvInsecure+"=true", fmt.Sprintf("%s (%s=true)", flagOfEnv[remote.EnvInsecure], remote.EnvInsecure))
	return usageErr("%s", strings.TrimPrefix(strings.TrimPrefix(msg, "maestro backend: "), "maestro reader: "))
}

// reader opens the REST reader.
func (inv *invocation) reader() (*remote.Reader, error) {
	o, err := inv.options(false)
	if err != nil {
		return nil, err
	}
	r, err := remote.NewReader(o)
	if err != nil {
		return nil, settingsError(err)
	}
	return r, nil
}

// backend opens the gRPC source client (and its REST reads).
func (inv *invocation) backend() (*remote.Backend, error) {
	o, err := inv.options(true)
	if err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, settingsError(err)
	}
	b, err := remote.New(inv.ctx, o)
	if err != nil {
		return nil, settingsError(err)
	}
	return b, nil
}

// checkConsumer fails unless Maestro knows the consumer.
func (inv *invocation) checkConsumer(r *remote.Reader) error {
	err := r.CheckConsumer(inv.ctx, inv.o.Consumer)
	if errors.Is(err, remote.ErrConsumerNotRegistered) {
		return &failure{code: exitUsage, reason: reasonConsumerNotRegistered, err: fmt.Errorf("--consumer: %w", err)}
	}
	return err
}

// tracking runs a Tracker over d until stop is called: what --watch and
// wait wait with.
func tracking(ctx context.Context, d maestro.Delivery, inv *invocation) (t *maestro.Tracker, stop func()) {
	t = maestro.NewTracker(d, inv.clientLog)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := t.Run(ctx); err != nil {
			inv.log.Warn("watching work status failed", "err", err)
		}
	}()
	return t, func() { cancel(); wg.Wait() }
}
