package remote_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// pki is a throw-away CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type pki struct {
	dir                   string
	caFile                string
	clientCert, clientKey string
	pool                  *x509.CertPool
	server                tls.Certificate
}

func newPKI(t *testing.T, clientCN string) *pki {
	t.Helper()
	dir := t.TempDir()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	sign := func(tmpl, parent *x509.Certificate, pub, priv any) []byte {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}

	caKey := key()
	caTmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{dir: dir, caFile: write("ca.crt", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)

	srvKey := key()
	srvDER := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "maestro"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, &srvKey.PublicKey, caKey)
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}

	cliKey := key()
	cliDER := sign(&x509.Certificate{Subject: pkix.Name{CommonName: clientCN},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, &cliKey.PublicKey, caKey)
	p.clientCert = write("client.crt", "CERTIFICATE", cliDER)
	p.clientKey = write("client.key", "EC PRIVATE KEY", keyDER(cliKey))
	return p
}

func (p *pki) serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// seen records what the TLS endpoints were presented with.
type seen struct {
	mu        sync.Mutex
	grpcAuth  []string
	grpcPeers []string
	restAuth  []string
	restPeers []string
}

func (s *seen) snapshot() (grpcAuth, grpcPeers, restAuth, restPeers []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.grpcAuth...), append([]string(nil), s.grpcPeers...),
		append([]string(nil), s.restAuth...), append([]string(nil), s.restPeers...)
}

// startTLSEndpoints starts a gRPC server and an HTTPS server that require a
// client certificate from p's CA and record the bearer token and client
// name of every call.
//
// The local Maestro serves plaintext only, so TLS, mTLS and the token are
// checked against these stand-ins instead. They stand in for Maestro's
// transport only, not its behaviour: the gRPC server implements no service
// and answers every call Unimplemented (after the TLS handshake and after
// reading the call's metadata, which is what is checked), and the REST
// server answers the consumer listing Ready asks for.
func startTLSEndpoints(t *testing.T, p *pki) (grpcAddr, httpURL string, s *seen) {
	t.Helper()
	s = &seen{}
	peerName := func(cs *tls.ConnectionState) string {
		if cs == nil || len(cs.PeerCertificates) == 0 {
			return ""
		}
		return cs.PeerCertificates[0].Subject.CommonName
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(p.serverTLS())),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			md, _ := metadata.FromIncomingContext(stream.Context())
			var name string
			if ai, ok := credentialsFromStream(stream); ok {
				name = peerName(&ai.State)
			}
			s.mu.Lock()
			s.grpcAuth = append(s.grpcAuth, md.Get("authorization")...)
			s.grpcPeers = append(s.grpcPeers, name)
			s.mu.Unlock()
			return status.Error(codes.Unimplemented, "stand-in")
		}))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.restAuth = append(s.restAuth, r.Header.Get("Authorization"))
		s.restPeers = append(s.restPeers, peerName(r.TLS))
		s.mu.Unlock()
		if r.URL.Path != "/api/maestro/v1/consumers" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"ConsumerList","page":1,"size":0,"total":0,"items":[]}`))
	}))
	hs.TLS = p.serverTLS()
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected in some tests
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return lis.Addr().String(), hs.URL, s
}

func credentialsFromStream(stream grpc.ServerStream) (credentials.TLSInfo, bool) {
	pr, ok := peer.FromContext(stream.Context())
	if !ok {
		return credentials.TLSInfo{}, false
	}
	ti, ok := pr.AuthInfo.(credentials.TLSInfo)
	return ti, ok
}

// TLS with the configured CA, mTLS with the client certificate and the
// bearer token, on both the gRPC and the REST connection.
func TestTLSMutualAuthAndToken(t *testing.T) {
	p := newPKI(t, "hyperfleet-adapter")
	grpcAddr, httpURL, s := startTLSEndpoints(t, p)
	tokenFile := filepath.Join(p.dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := remote.New(ctx, remote.Options{
		GRPCEndpoint: grpcAddr, HTTPEndpoint: httpURL, SourceID: "tls-test",
		CAFile: p.caFile, ClientCertFile: p.clientCert, ClientKeyFile: p.clientKey, TokenFile: tokenFile,
		DialTimeout: 5 * time.Second, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// Generous: under make test's load (every package at once on 2 cores) a
	// first TLS handshake can fail and wait out a gRPC reconnect backoff.
	waitFor(t, 40*time.Second, "Ready over TLS", func() (bool, string) {
		err := b.Ready(ctx)
		return err == nil, errString(err)
	})
	waitFor(t, 10*time.Second, "a gRPC call at the stand-in", func() (bool, string) {
		ga, _, _, _ := s.snapshot()
		return len(ga) > 0, "none yet"
	})
	grpcAuth, grpcPeers, restAuth, restPeers := s.snapshot()
	for i, a := range grpcAuth {
		if a != "Bearer s3cret-token" || grpcPeers[i] != "hyperfleet-adapter" {
			t.Errorf("gRPC call %d: authorization %q, client certificate %q", i, a, grpcPeers[i])
		}
	}
	if len(restAuth) == 0 {
		t.Fatal("no REST request seen")
	}
	for i, a := range restAuth {
		if a != "Bearer s3cret-token" || restPeers[i] != "hyperfleet-adapter" {
			t.Errorf("REST request %d: authorization %q, client certificate %q", i, a, restPeers[i])
		}
	}
}

// A server whose certificate the configured CA did not sign is not
// trusted, and Ready says which endpoints failed.
func TestTLSUntrustedServer(t *testing.T) {
	p := newPKI(t, "hyperfleet-adapter")
	other := newPKI(t, "hyperfleet-adapter")
	grpcAddr, httpURL, s := startTLSEndpoints(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := remote.New(ctx, remote.Options{
		GRPCEndpoint: grpcAddr, HTTPEndpoint: httpURL, SourceID: "tls-test",
		CAFile: other.caFile, ClientCertFile: other.clientCert, ClientKeyFile: other.clientKey,
		DialTimeout: 500 * time.Millisecond, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Ready(ctx)
	if err == nil {
		t.Fatal("Ready passed against a server signed by another CA")
	}
	for _, want := range []string{grpcAddr, httpURL, "certificate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Ready error %q does not mention %q", err, want)
		}
	}
	if ga, _, ra, _ := s.snapshot(); len(ga)+len(ra) != 0 {
		t.Errorf("the untrusted server got %d gRPC calls and %d REST requests", len(ga), len(ra))
	}
}

// A broken client certificate fails New, naming the setting.
func TestTLSBadClientCertificate(t *testing.T) {
	p := newPKI(t, "x")
	junk := filepath.Join(p.dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := remote.New(context.Background(), remote.Options{
		GRPCEndpoint: "127.0.0.1:1", HTTPEndpoint: "https://127.0.0.1:1", SourceID: "tls-test",
		CAFile: p.caFile, ClientCertFile: junk, ClientKeyFile: p.clientKey,
	})
	if err == nil || !strings.Contains(err.Error(), remote.EnvClientCertFile) {
		t.Fatalf("New with a junk certificate: %v, want an error naming %s", err, remote.EnvClientCertFile)
	}
	_, err = remote.New(context.Background(), remote.Options{
		GRPCEndpoint: "127.0.0.1:1", HTTPEndpoint: "https://127.0.0.1:1", SourceID: "tls-test", CAFile: junk,
	})
	if err == nil || !strings.Contains(err.Error(), remote.EnvCAFile) {
		t.Fatalf("New with a junk CA: %v, want an error naming %s", err, remote.EnvCAFile)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// waitFor polls cond until it is done or the timeout passes: the state
// polled lives in another process or in the client's goroutines, with
// nothing to wait on.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, state)
		}
		<-tick.C
	}
}
