# Local Maestro server for integration tests (see deploy/local/maestro.sh).
# Include from the top-level Makefile:  include deploy/local/maestro.mk
#
#   make maestro-start      build if needed, start PostgreSQL + Maestro, wait until healthy
#   make maestro-stop       stop the server
#   make maestro-restart    restart it keeping the database
#   make maestro-build      only build (cached) the maestro binary (server and agent)
#
# Real agents (against deploy/local/kube's kube-apiserver) are started per
# consumer with `deploy/local/maestro.sh agent start NAME...`.
#
# Then: eval "$(deploy/local/maestro.sh env)" && go test ./...
# Ports, cache and state directories: MAESTRO_* environment variables, see maestro.sh.

# Directory of this fragment, whatever the including Makefile's directory.
MAESTRO_LOCAL_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
MAESTRO_SCRIPT ?= $(MAESTRO_LOCAL_DIR)/maestro.sh
# Consumers to register after maestro-start, e.g. MAESTRO_CONSUMERS="cluster-1 cluster-2".
MAESTRO_CONSUMERS ?=

.PHONY: maestro-build maestro-start maestro-stop maestro-restart

maestro-build:
	$(MAESTRO_SCRIPT) build

maestro-start:
	$(MAESTRO_SCRIPT) start
	$(if $(strip $(MAESTRO_CONSUMERS)),$(MAESTRO_SCRIPT) consumer $(MAESTRO_CONSUMERS))

maestro-stop:
	$(MAESTRO_SCRIPT) stop

maestro-restart:
	$(MAESTRO_SCRIPT) restart
