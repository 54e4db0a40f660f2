package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"
)

const (
	// maxFileSize bounds what is read from --manifest-file at all.
	maxFileSize = 8 << 20
	// maxManifestsSize is the limit of OCM's ManifestWork validation
	// (workvalidator.ManifestValidator): the manifests' encoded sizes added up.
	maxManifestsSize = 500 * 1024
)

var workGVK = workv1.SchemeGroupVersion.WithKind("ManifestWork")

// manifestFile is what --manifest-file holds.
type manifestFile struct {
	path string
	// work is set when the file holds a ManifestWork.
	work *workv1.ManifestWork
	// workLine is the line the ManifestWork starts on.
	workLine int
	// manifests are the plain manifests, or the work's.
	manifests []manifest
}

// manifest is one Kubernetes object from the file.
type manifest struct {
	raw []byte // JSON
	obj *unstructured.Unstructured
	// where names it for messages: file:line and what it is.
	where string
}

// identity is what build and diff match manifests by: the API version may
// change (a newer version of the same object), the rest may not.
type identity struct{ group, kind, namespace, name string }

func (id identity) String() string {
	gk := id.kind
	if id.group != "" {
		gk += "." + id.group
	}
	if id.namespace != "" {
		return fmt.Sprintf("%s %s/%s", gk, id.namespace, id.name)
	}
	return fmt.Sprintf("%s %s", gk, id.name)
}

func identityOf(obj *unstructured.Unstructured) identity {
	gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
	return identity{group: gv.Group, kind: obj.GetKind(), namespace: obj.GetNamespace(), name: obj.GetName()}
}

// stdinPath is the --manifest-file that reads standard input.
const stdinPath = "-"

// readManifestFile reads and decodes path ("-": stdin). Every error is a
// failure naming the file (and line) at fault.
func readManifestFile(stdin io.Reader, path string) (*manifestFile, error) {
	if path == stdinPath {
		const name = "(standard input)"
		if stdin == nil {
			return nil, failf(exitUsage, reasonManifestFile, "--manifest-file -: no standard input")
		}
		data, err := io.ReadAll(io.LimitReader(stdin, maxFileSize+1))
		switch {
		case err != nil:
			return nil, failf(exitUsage, reasonManifestFile, "--manifest-file -: reading standard input: %v", err)
		case len(data) > maxFileSize:
			return nil, failf(exitUsage, reasonManifestFile, "--manifest-file -: more than the %d bytes a ManifestWork could hold", maxFileSize)
		case len(bytes.TrimSpace(data)) == 0:
			return nil, failf(exitUsage, reasonManifestFile, "--manifest-file -: standard input is empty")
		}
		return parseManifests(name, data)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, failf(exitUsage, reasonManifestFile, "--manifest-file: %v", err)
	}
	if st.IsDir() {
		return nil, failf(exitUsage, reasonManifestFile, "--manifest-file %s: is a directory, want a file", path)
	}
	if st.Size() > maxFileSize {
		return nil, failf(exitUsage, reasonManifestFile, "--manifest-file %s: %d bytes, more than the %d a ManifestWork could hold", path, st.Size(), maxFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, failf(exitUsage, reasonManifestFile, "--manifest-file: %v", err)
	}
	return parseManifests(path, data)
}

// document is one YAML document of a file.
type document struct {
	line int // first line, 1-based
	data []byte
}

// splitDocuments splits YAML at "---" lines, remembering where each
// document starts so errors can name the line.
func splitDocuments(data []byte) []document {
	var docs []document
	cur := document{line: 1}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), maxFileSize+1)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "---"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			docs = append(docs, cur)
			cur = document{line: n + 1}
			if strings.TrimSpace(rest) != "" && !strings.HasPrefix(strings.TrimSpace(rest), "#") {
				// "--- value": the document starts on this line.
				cur = document{line: n, data: []byte(strings.TrimSpace(rest) + "\n")}
			}
			continue
		}
		if line == "..." {
			continue
		}
		cur.data = append(cur.data, line...)
		cur.data = append(cur.data, '\n')
	}
	return append(docs, cur)
}

var yamlLine = regexp.MustCompile(`^(?:error converting YAML to JSON: )?yaml: line (\d+): (.*)$`)

// yamlError rewrites a YAML error to name the file's line, not the
// document's.
func yamlError(path string, doc document, docNo int, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return failf(exitUsage, reasonInvalidManifest, "%s:%d: document %d is not valid YAML: %s", path, doc.line+n-1, docNo, m[2])
	}
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	return failf(exitUsage, reasonInvalidManifest, "%s:%d: document %d is not valid YAML: %s", path, doc.line, docNo, msg)
}

func parseManifests(path string, data []byte) (*manifestFile, error) {
	mf := &manifestFile{path: path}
	type decoded struct {
		doc   document
		docNo int
		obj   map[string]any
		raw   []byte
	}
	var objs []decoded
	docNo := 0
	for _, doc := range splitDocuments(data) {
		if len(bytes.TrimSpace(stripComments(doc.data))) == 0 {
			continue
		}
		docNo++
		raw, err := yaml.YAMLToJSON(doc.data)
		if err != nil {
			return nil, yamlError(path, doc, docNo, err)
		}
		if string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, failf(exitUsage, reasonInvalidManifest, "%s:%d: document %d: %v", path, doc.line, docNo, err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, failf(exitUsage, reasonInvalidManifest, "%s:%d: document %d is a %s, not a Kubernetes object (a YAML mapping)", path, doc.line, docNo, yamlKind(v))
		}
		objs = append(objs, decoded{doc: doc, docNo: docNo, obj: obj, raw: raw})
	}
	if len(objs) == 0 {
		return nil, failf(exitUsage, reasonInvalidManifest, "%s: holds no manifests", path)
	}

	for _, d := range objs {
		u := &unstructured.Unstructured{Object: d.obj}
		if u.GroupVersionKind() != workGVK {
			continue
		}
		if len(objs) > 1 {
			return nil, failf(exitUsage, reasonInvalidManifest, "%s:%d: a ManifestWork must be the only document in the file (found %d documents)", path, d.doc.line, len(objs))
		}
		var w workv1.ManifestWork
		if err := yaml.UnmarshalStrict(d.doc.data, &w); err != nil {
			return nil, failf(exitUsage, reasonInvalidManifest, "%s:%d: not a valid ManifestWork: %s", path, d.doc.line, strings.TrimPrefix(err.Error(), "error unmarshaling JSON: while decoding JSON: "))
		}
		mf.work, mf.workLine = &w, d.doc.line
		for i, m := range w.Spec.Workload.Manifests {
			where := fmt.Sprintf("%s:%d: spec.workload.manifests[%d]", path, d.doc.line, i)
			raw := m.Raw
			if raw == nil && m.Object != nil {
				var err error
				if raw, err = json.Marshal(m.Object); err != nil {
					return nil, failf(exitUsage, reasonInvalidManifest, "%s: %v", where, err)
				}
			}
			obj := &unstructured.Unstructured{}
			if err := obj.UnmarshalJSON(raw); err != nil {
				return nil, failf(exitUsage, reasonInvalidManifest, "%s: not a Kubernetes object: %v", where, err)
			}
			mf.manifests = append(mf.manifests, manifest{raw: raw, obj: obj, where: where})
		}
		return mf, nil
	}

	for _, d := range objs {
		where := fmt.Sprintf("%s:%d", path, d.doc.line)
		u := &unstructured.Unstructured{Object: d.obj}
		if u.GetKind() == "List" && u.GetAPIVersion() == "v1" {
			items, _ := d.obj["items"].([]any)
			for i, it := range items {
				m, ok := it.(map[string]any)
				if !ok {
					return nil, failf(exitUsage, reasonInvalidManifest, "%s: List items[%d] is not an object", where, i)
				}
				raw, err := json.Marshal(m)
				if err != nil {
					return nil, failf(exitUsage, reasonInvalidManifest, "%s: List items[%d]: %v", where, i, err)
				}
				mf.manifests = append(mf.manifests, manifest{raw: raw, obj: &unstructured.Unstructured{Object: m}, where: fmt.Sprintf("%s: items[%d]", where, i)})
			}
			continue
		}
		mf.manifests = append(mf.manifests, manifest{raw: d.raw, obj: u, where: where})
	}
	return mf, nil
}

func yamlKind(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	case float64, int64:
		return "number"
	case bool:
		return "boolean"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// stripComments drops comment-only lines, so a document of comments is
// recognised as empty.
func stripComments(data []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// basis is the stored state a ManifestWork file was read or built from:
// its metadata.generation and creationTimestamp (as build and get write
// them). Generations start again at 1 when a work is deleted and created
// anew (as apply does when a server refuses to change the manifest set in
// place), so the creation time tells such a new work from the old one.
type basis struct {
	generation int64
	created    time.Time
}

// conflict says why stored is not the state the file was based on, or ""
// when it is (or the file names no basis).
func (b basis) conflict(stored *workv1.ManifestWork) string {
	switch {
	case b.generation == 0:
		return ""
	case stored == nil:
		return fmt.Sprintf("the file carries metadata.generation %d, but the work no longer exists", b.generation)
	case stored.Generation != b.generation:
		return fmt.Sprintf("the file carries metadata.generation %d, but the work is at generation %d: another writer changed it", b.generation, stored.Generation)
	case !b.created.IsZero() && !stored.CreationTimestamp.IsZero() &&
		!b.created.Truncate(time.Second).Equal(stored.CreationTimestamp.Truncate(time.Second)):
		return fmt.Sprintf("the file carries metadata.creationTimestamp %s, but the work was created anew at %s: another writer replaced it",
			b.created.UTC().Format(time.RFC3339), stored.CreationTimestamp.UTC().Format(time.RFC3339))
	}
	return ""
}

// workFromFile makes the ManifestWork to apply: the file's (named --name
// when given) or one wrapping the file's manifests, and the basis the file
// names.
func workFromFile(mf *manifestFile, name, consumer string) (w *workv1.ManifestWork, base basis, err error) {
	if mf.work != nil {
		src := mf.work
		if src.Namespace != "" && src.Namespace != consumer {
			return nil, basis{}, failf(exitUsage, reasonInvalidManifest, "%s:%d: the ManifestWork's metadata.namespace %q is not --consumer %q (the namespace of a work is its consumer)", mf.path, mf.workLine, src.Namespace, consumer)
		}
		if name == "" {
			name = src.Name
		}
		if name == "" {
			return nil, basis{}, failf(exitUsage, reasonInvalidManifest, "%s:%d: the ManifestWork has no metadata.name and no --name was given", mf.path, mf.workLine)
		}
		w = &workv1.ManifestWork{
			TypeMeta: metav1.TypeMeta{APIVersion: workGVK.GroupVersion().String(), Kind: workGVK.Kind},
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Namespace:   consumer,
				Labels:      src.Labels,
				Annotations: src.Annotations,
			},
			Spec: *src.Spec.DeepCopy(),
		}
		for i := range mf.manifests {
			w.Spec.Workload.Manifests[i] = workv1.Manifest{RawExtension: runtime.RawExtension{Raw: mf.manifests[i].raw}}
		}
		return w, basis{generation: src.Generation, created: src.CreationTimestamp.Time}, nil
	}
	if name == "" {
		return nil, basis{}, failf(exitUsage, reasonUsage, "--name is required: %s holds plain manifests, not a ManifestWork with a name", mf.path)
	}
	w = &workv1.ManifestWork{
		TypeMeta:   metav1.TypeMeta{APIVersion: workGVK.GroupVersion().String(), Kind: workGVK.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: consumer},
	}
	for _, m := range mf.manifests {
		w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: m.raw}})
	}
	return w, basis{}, nil
}

// problem is one thing validate found wrong.
type problem struct {
	Where   string `json:"where,omitempty"`
	Problem string `json:"problem"`
}

func (p problem) String() string {
	if p.Where == "" {
		return p.Problem
	}
	return p.Where + ": " + p.Problem
}

// checkManifests runs the offline checks over the file's manifests.
func checkManifests(mf *manifestFile) []problem {
	var out []problem
	bad := func(where, format string, args ...any) {
		out = append(out, problem{Where: where, Problem: fmt.Sprintf(format, args...)})
	}
	seen := map[identity]string{}
	total := 0
	for _, m := range mf.manifests {
		total += len(m.raw)
		obj := m.obj
		where := m.where
		if k := obj.GetKind(); k != "" && obj.GetName() != "" {
			where = fmt.Sprintf("%s (%s)", m.where, identityOf(obj))
		}
		apiVersion, kind, name, ns := obj.GetAPIVersion(), obj.GetKind(), obj.GetName(), obj.GetNamespace()
		switch {
		case apiVersion == "":
			bad(where, "apiVersion is missing")
		default:
			if _, err := schema.ParseGroupVersion(apiVersion); err != nil {
				bad(where, "apiVersion %q: %v", apiVersion, err)
			}
		}
		if kind == "" {
			bad(where, "kind is missing")
		}
		if obj.GetGenerateName() != "" {
			bad(where, "metadata.generateName is not allowed in a ManifestWork; set metadata.name")
		}
		if name == "" {
			bad(where, "metadata.name is missing")
		} else if err := checkObjectName(obj, name); err != nil {
			bad(where, "metadata.name %q: %v", name, err)
		}
		if ns != "" {
			if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
				bad(where, "metadata.namespace %q is not an RFC 1123 label: %s", ns, errs[0])
			}
		}
		if kind != "" && name != "" {
			id := identityOf(obj)
			if first, dup := seen[id]; dup {
				bad(where, "%s appears twice (first at %s)", id, first)
			} else {
				seen[id] = m.where
			}
		}
	}
	if total > maxManifestsSize {
		out = append(out, problem{Where: mf.path, Problem: fmt.Sprintf("the manifests add up to %d bytes, over Maestro's limit of %d (500 KiB); split them over several works", total, maxManifestsSize)})
	}
	return out
}

// checkObjectName checks a manifest's name the way the API server would
// for its kind: most kinds take RFC 1123 subdomains; namespaces RFC 1123
// labels; services RFC 1035 labels; RBAC objects path segments (so
// "system:controller:x" is fine).
func checkObjectName(obj *unstructured.Unstructured, name string) error {
	gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
	var errs []string
	switch {
	case gv.Group == "rbac.authorization.k8s.io":
		if name == "." || name == ".." || strings.ContainsAny(name, "/%") {
			errs = []string{`may not be "." or ".." nor contain "/" or "%"`}
		}
	case gv.Group == "" && obj.GetKind() == "Namespace":
		if e := validation.IsDNS1123Label(name); len(e) > 0 {
			errs = []string{"not an RFC 1123 label: " + e[0]}
		}
	case gv.Group == "" && obj.GetKind() == "Service":
		if e := validation.IsDNS1035Label(name); len(e) > 0 {
			errs = []string{"not an RFC 1035 label: " + e[0]}
		}
	default:
		if e := validation.IsDNS1123Subdomain(name); len(e) > 0 {
			errs = []string{"not an RFC 1123 subdomain: " + e[0]}
		}
	}
	if len(errs) > 0 {
		return errors.New(errs[0])
	}
	return nil
}

func checkWorkName(name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("not an RFC 1123 subdomain: %s", errs[0])
	}
	return nil
}

func checkConsumerName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("not an RFC 1123 label: %s", errs[0])
	}
	return nil
}

// loadWork reads --manifest-file, checks it offline and returns the work to
// apply. Every problem is a failure (exit 2) naming the file and line.
func loadWork(stdin io.Reader, path, name, consumer string) (*workv1.ManifestWork, basis, *manifestFile, error) {
	mf, err := readManifestFile(stdin, path)
	if err != nil {
		return nil, basis{}, nil, err
	}
	if ps := checkManifests(mf); len(ps) > 0 {
		return nil, basis{}, mf, problemsFailure(ps, "run 'maestro-cli validate' for all")
	}
	w, base, err := workFromFile(mf, name, consumer)
	if err != nil {
		return nil, basis{}, mf, err
	}
	if err := checkWorkName(w.Name); err != nil {
		return nil, basis{}, mf, failf(exitUsage, reasonInvalidManifest, "%s: ManifestWork name %q: %v", path, w.Name, err)
	}
	return w, base, mf, nil
}

// problemsFailure is the one line for a list of problems: the first, and
// how many more there are (where to find them: hint).
func problemsFailure(ps []problem, hint string) *failure {
	more := ""
	switch n := len(ps) - 1; {
	case n == 1:
		more = fmt.Sprintf(" (and 1 more problem; %s)", hint)
	case n > 1:
		more = fmt.Sprintf(" (and %d more problems; %s)", n, hint)
	}
	return failf(exitUsage, reasonInvalidManifest, "%s%s", ps[0], more)
}
