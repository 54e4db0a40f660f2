package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// Offline checks: each bad file fails with exit 2 and one line naming the
// file (and line) and what is wrong. No Maestro is needed.
func TestValidateOffline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: " + strings.Repeat("x", 600*1024) + "\n"
	for _, tc := range []struct {
		name    string
		content string // "" for a missing file
		wants   []string
	}{
		{"missing file", "", []string{"--manifest-file", "no such file or directory"}},
		{"broken YAML", "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n   bad: indent\n",
			[]string{"broken-yaml.yaml:8:", "document 2", "not valid YAML"}},
		{"not a mapping", "- a\n- b\n", []string{"not-a-mapping.yaml:1:", "not a Kubernetes object"}},
		{"no apiVersion", "kind: ConfigMap\nmetadata:\n  name: cm\n", []string{"no-apiversion.yaml:1", "apiVersion is missing"}},
		{"no kind", "apiVersion: v1\nmetadata:\n  name: cm\n", []string{"no-kind.yaml:1", "kind is missing"}},
		{"no name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", []string{"no-name.yaml:1", "metadata.name is missing"}},
		{"bad name", "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n", []string{"bad-name.yaml:2", `metadata.name "Bad_Name"`, "RFC 1123 subdomain"}},
		{"bad namespace", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: a.b\n", []string{"bad-namespace.yaml:1", `metadata.namespace "a.b"`, "RFC 1123 label"}},
		{"generateName", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: cm-\n", []string{"generatename.yaml:1", "generateName is not allowed"}},
		{"duplicate", twoConfigMaps + "---\n" + strings.SplitN(twoConfigMaps, "---\n", 2)[1], []string{"duplicate.yaml:18", "ConfigMap default/cm-b appears twice", "duplicate.yaml:10"}},
		{"too big", big, []string{"too-big.yaml", "over Maestro's limit of 512000"}},
		{"empty", "# nothing\n---\n", []string{"empty.yaml: holds no manifests"}},
		{"ManifestWork with others", manifestWorkFile + "---\n" + twoConfigMaps, []string{"manifestwork-with-others.yaml:1", "must be the only document"}},
		{"ManifestWork typo", strings.Replace(manifestWorkFile, "manifestConfigs:", "manifestConfig:", 1), []string{"manifestwork-typo.yaml:1", `unknown field "manifestConfig"`}},
		{"ManifestWork for another consumer", strings.Replace(manifestWorkFile, "  labels:", "  namespace: elsewhere\n  labels:", 1), []string{`metadata.namespace "elsewhere" is not --consumer "cluster-1"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fileName := strings.ToLower(strings.ReplaceAll(tc.name, " ", "-")) + ".yaml"
			path := dir + "/" + fileName
			if tc.content != "" {
				path = writeFile(t, dir, fileName, tc.content)
			}
			r := runCLI(t, nil, "validate", "--manifest-file", path, "--consumer", "cluster-1", "--name", "w").want(t, exitUsage)
			containsAll(t, "error line", r.errorLine(t, "validate"), tc.wants...)
		})
	}

	t.Run("every problem is listed", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, dir, "many.yaml", "kind: ConfigMap\nmetadata:\n  name: A\n---\napiVersion: v1\nmetadata:\n  name: b\n")
		r := runCLI(t, nil, "validate", "-f", path, "--consumer", "cluster-1", "-o", "json").want(t, exitUsage)
		var rep validationReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Valid || len(rep.Problems) != 3 {
			t.Errorf("report = %+v, want 3 problems", rep)
		}
		containsAll(t, "error line", r.errorLine(t, "validate"), "and 2 more problems; all are listed on stdout")
	})

	t.Run("valid, offline", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, dir, "ok.yaml", twoConfigMaps+"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: system:hyperfleet:reader\n")
		r := runCLI(t, nil, "validate", "-f", path, "--consumer", "cluster-1").want(t, exitOK)
		containsAll(t, "stdout", r.stdout, "valid: 3 manifests")
		containsAll(t, "stderr", r.stderr, "no --http-endpoint: the consumer is not checked", "no --name given")
	})

	t.Run("standard input", func(t *testing.T) {
		t.Parallel()
		r := runCLIWithStdin(t, nil, twoConfigMaps, "validate", "-f", "-", "--consumer", "cluster-1").want(t, exitOK)
		containsAll(t, "stdout", r.stdout, "valid: 2 manifests")
		r = runCLIWithStdin(t, nil, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n", "validate", "-f", "-", "--consumer", "cluster-1").want(t, exitUsage)
		containsAll(t, "error line", r.errorLine(t, "validate"), "(standard input):1", `metadata.name "Bad_Name"`)
		r = runCLIWithStdin(t, nil, "  \n", "validate", "-f", "-", "--consumer", "cluster-1").want(t, exitUsage)
		containsAll(t, "error line", r.errorLine(t, "validate"), "--manifest-file -: standard input is empty")
	})

	t.Run("bad flags", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, dir, "flags.yaml", twoConfigMaps)
		for _, tc := range []struct {
			args  []string
			wants []string
		}{
			{[]string{"validate", "-f", path}, []string{"--consumer is required"}},
			{[]string{"validate", "--consumer", "c1"}, []string{"--manifest-file is required"}},
			{[]string{"validate", "-f", path, "--consumer", "Cluster_1"}, []string{`--consumer "Cluster_1"`, "RFC 1123 label"}},
			{[]string{"validate", "-f", path, "--consumer", "c1", "--name", "-w-"}, []string{`--name "-w-"`, "RFC 1123 subdomain"}},
			{[]string{"validate", "-f", path, "--consumer", "c1", "--bogus"}, []string{"flag provided but not defined: -bogus"}},
			{[]string{"validate", "-f", path, "--consumer", "c1", "-o", "xml"}, []string{`--output (-o, MAESTRO_CLI_OUTPUT): "xml"`}},
			{[]string{"validate", "-f", path, "--consumer", "c1", "extra"}, []string{`unexpected argument "extra"`}},
		} {
			r := runCLI(t, nil, tc.args...).want(t, exitUsage)
			containsAll(t, "error line", r.errorLine(t, "validate"), tc.wants...)
		}
		r := runCLI(t, map[string]string{"MAESTRO_CLI_TIMEOUT": "soon"}, "validate", "-f", path, "--consumer", "c1").want(t, exitUsage)
		containsAll(t, "error line", r.errorLine(t, "validate"), `MAESTRO_CLI_TIMEOUT: "soon" is not a duration`)
		r = runCLI(t, nil, "frobnicate").want(t, exitUsage)
		containsAll(t, "error line", r.errorLine(t, ""), `unknown command "frobnicate"`)
	})
}

// Online: the consumer must exist when Maestro answers; when it does not
// answer, validate says so and judges the file alone.
func TestValidateConsumer(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := "cli-" + suffix(t)
	w.register(consumer)
	file := w.file("cms.yaml", twoConfigMaps)

	r := w.cli("validate", "-f", file, "--consumer", consumer, "--name", "w").want(t, exitOK)
	containsAll(t, "stdout", r.stdout, "valid: 2 manifests", "work "+consumer+"/w", "consumer registered")

	r = w.cli("validate", "-f", file, "--consumer", "no-such-"+suffix(t), "--name", "w").want(t, exitUsage)
	containsAll(t, "error line", r.errorLine(t, "validate"), "--consumer", "is not registered", w.maestro.HTTPEndpoint)

	closed := closedAddr(t)
	r = runCLI(t, w.env("MAESTRO_HTTP_ENDPOINT", "http://"+closed), "validate", "-f", file, "--consumer", consumer).want(t, exitOK)
	containsAll(t, "stderr", r.stderr, "Maestro is not reachable: the consumer is not checked", closed)
}
