//go:build tools

// Package main pins the modules the packages are being written against, so
// that go.mod stays tidy while they land one by one.
package main

import (
	_ "cloud.google.com/go/pubsub/v2"
	_ "cloud.google.com/go/pubsub/v2/pstest"
	_ "github.com/cenkalti/backoff/v5"
	_ "github.com/cloudevents/sdk-go/protocol/pubsub/v2"
	_ "github.com/cloudevents/sdk-go/v2"
	_ "github.com/kelseyhightower/envconfig"
	_ "github.com/lmittmann/tint"
	_ "github.com/openshift-online/maestro/pkg/api/openapi"
	_ "github.com/openshift-online/maestro/pkg/client/cloudevents/grpcsource"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/rabbitmq/amqp091-go"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/kubernetes/fake"
	_ "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	_ "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work"
	_ "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc"
	_ "sigs.k8s.io/yaml"
)
