package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// tlsConfig builds the client TLS configuration from the options' files.
// The client certificate is read through a fileCache, so a rotated one is
// presented from the next handshake on without restarting; the CA is read
// once. Errors name the environment variable of the file at fault.
func tlsConfig(o Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // opt-in, test setups only
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", EnvCAFile, o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if o.ClientCertFile != "" {
		pair := &keyPair{cert: newFileCache(o.ClientCertFile), key: newFileCache(o.ClientKeyFile)}
		// Load once now: a broken pair fails at start, not at the first
		// handshake deep inside the gRPC client.
		if _, err := pair.load(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return pair.load()
		}
	}
	return cfg, nil
}

// keyPair is the client certificate, re-parsed when either file changes.
type keyPair struct {
	cert, key *fileCache

	mu      sync.Mutex
	certRaw []byte
	keyRaw  []byte
	parsed  *tls.Certificate
}

func (p *keyPair) load() (*tls.Certificate, error) {
	certPEM, err := p.cert.read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvClientCertFile, err)
	}
	keyPEM, err := p.key.read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvClientKeyFile, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.parsed != nil && string(certPEM) == string(p.certRaw) && string(keyPEM) == string(p.keyRaw) {
		return p.parsed, nil
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", EnvClientCertFile, EnvClientKeyFile, err)
	}
	p.certRaw, p.keyRaw, p.parsed = certPEM, keyPEM, &c
	return p.parsed, nil
}

// fileCache reads a small file again only when its size or modification
// time changed, and at most once a second: credentials are read on every
// call, and mounted secrets change by replacement.
type fileCache struct {
	path string

	mu      sync.Mutex
	checked time.Time
	modTime time.Time
	size    int64
	data    []byte
}

func newFileCache(path string) *fileCache { return &fileCache{path: path} }

func (f *fileCache) read() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.data != nil && now.Sub(f.checked) < time.Second {
		return f.data, nil
	}
	st, err := os.Stat(f.path)
	if err != nil {
		return nil, err
	}
	f.checked = now
	if f.data != nil && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.data, nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, err
	}
	f.data, f.modTime, f.size = data, st.ModTime(), st.Size()
	return data, nil
}

// token is the bearer token from TokenFile.
type token struct{ file *fileCache }

func (t *token) value() (string, error) {
	data, err := t.file.read()
	if err != nil {
		return "", fmt.Errorf("%s: %w", EnvTokenFile, err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("%s: %s is empty", EnvTokenFile, t.file.path)
	}
	return v, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials: every gRPC
// call carries the current token.
func (t *token) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	v, err := t.value()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + v}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a token
// never goes over plaintext.
func (t *token) RequireTransportSecurity() bool { return true }

// bearerTransport adds the token to every REST request, over https only
// unless insecure (Options.Insecure) lets it travel in clear.
type bearerTransport struct {
	token    *token
	next     http.RoundTripper
	insecure bool
}

func (b *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	v, err := b.token.value()
	if err != nil {
		return nil, err
	}
	if req.URL.Scheme != "https" && !b.insecure {
		return nil, errors.New("refusing to send the Maestro token over plain http (" + EnvInsecure + " is not set)")
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+v)
	return b.next.RoundTrip(req)
}
