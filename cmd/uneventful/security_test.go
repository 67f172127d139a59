package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/uneventful/uneventful"
)

// pki is a throwaway certificate authority with a server certificate for
// 127.0.0.1 and localhost and a client certificate, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
	}
	caKey := key()
	caTmpl := template("uneventful test CA " + uneventful.NewID()[:8])
	caTmpl.IsCA, caTmpl.BasicConstraintsValid = true, true
	caTmpl.KeyUsage |= x509.KeyUsageCertSign
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, tmpl *x509.Certificate) (certFile, keyFile string) {
		k := key()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "PRIVATE KEY", kder)
	}
	p := &pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	server := template("localhost")
	server.DNSNames, server.IPAddresses = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	server.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	p.serverCert, p.serverKey = issue("server", server)
	client := template("uneventful")
	client.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	p.clientCert, p.clientKey = issue("client", client)
	return p
}

// startNATSConf starts a private nats-server with JetStream on a free port
// with the given configuration added, and returns its host:port.
func startNATSConf(t *testing.T, conf string) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatal("nats-server is not on PATH; install it (Debian package nats-server)")
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	file := filepath.Join(dir, "nats.conf")
	conf = fmt.Sprintf("listen: %q\njetstream { store_dir: %q }\n%s\n", addr, filepath.Join(dir, "js"), conf)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := childCommand(bin, "-c", file)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not start:\n%s\n%s", conf, out.String())
		}
	}
}

// runRole runs a role in-process until it returns or 30 seconds pass, and
// returns what it logged and its error.
func runRole(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr syncBuffer
	m := &Main{Stdout: io.Discard, Stderr: &stderr}
	err := m.Run(ctx, append(args, "--http", "127.0.0.1:0"))
	if ctx.Err() != nil {
		t.Errorf("%s ran for 30s: want it to give up at once\n%s", args[0], stderr.String())
	}
	return stderr.String(), err
}

// creditAndRead credits 5 to a new wallet through a server role and reads
// the balance back from the read model.
func creditAndRead(t *testing.T, server string) {
	t.Helper()
	w := uneventful.NewID()
	res, err := http.Post(server+"/wallet/"+w+"/credit", "application/json", strings.NewReader(`{"amount": 5}`))
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(res); res.StatusCode != 200 || !strings.Contains(body, `"balance":5`) {
		t.Fatalf("credit: %d %s, want 200 and balance 5", res.StatusCode, body)
	}
	res, err = http.Get(server + "/wallet/" + w + "/balance")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(res); res.StatusCode != 200 || !strings.Contains(body, `"balance":5`) {
		t.Fatalf("balance: %d %s, want 200 and 5", res.StatusCode, body)
	}
}

// TestNATSAuth runs the split roles against a nats-server that requires a
// token, a user and password, an nkey, JWT credentials, or TLS with client
// certificates: with the right ones every role connects and a credit and a
// balance go through; with wrong or missing ones a role fails at start, in
// seconds, saying NATS refused it, and logs no secret.
func TestNATSAuth(t *testing.T) {
	redisURL := os.Getenv("UNEVENTFUL_REDIS_URL")
	if redisURL == "" {
		t.Skip("UNEVENTFUL_REDIS_URL is not set; set it to a Redis server, e.g. redis://127.0.0.1:6379")
	}
	good, rogue := newPKI(t), newPKI(t)
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()
	otherUser, _ := nkeys.CreateUser()
	otherSeed, _ := otherUser.Seed()
	dir := t.TempDir()
	file := func(name string, content []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	seedFile, otherSeedFile := file("user.nk", userSeed), file("other.nk", otherSeed)
	operatorConf, credsFile, otherCredsFile := jwtAuth(t, file)

	type refusal struct {
		name, url string // url: %s is host:port
		flags     []string
		want      string // in the error
	}
	for _, c := range []struct {
		name, conf, url string
		flags           []string
		refusals        []refusal
		secrets         []string // never in a role's log or error
	}{{
		name: "token",
		conf: `authorization { token: "s3cret-token-1" }`,
		url:  "nats://s3cret-token-1@%s",
		refusals: []refusal{
			{name: "none", url: "nats://%s", want: "authorization violation"},
			{name: "wrong", url: "nats://s3cret-wrong-token@%s", want: "authorization violation"},
		},
		secrets: []string{"s3cret-token-1", "s3cret-wrong-token"},
	}, {
		name: "password",
		// The permissions docs/DEPLOY.md says the roles need.
		conf: `authorization { users: [
			{user: "uneventful", password: "s3cret-pw-1", permissions: {
				publish: ["event.>", "recorded.>", "_INBOX.>", "$JS.API.>", "$JS.ACK.>"],
				subscribe: ["event.>", "recorded.>", "_INBOX.>"]}},
			{user: "other", password: "s3cret-pw-2", permissions: {publish: ["event.>"], subscribe: ["_INBOX.>"]}}
		] }`,
		url: "nats://uneventful:s3cret-pw-1@%s",
		refusals: []refusal{
			{name: "wrong", url: "nats://uneventful:s3cret-wrong-pw@%s", want: "authorization violation"},
			{name: "too few permissions", url: "nats://other:s3cret-pw-2@%s", want: "permissions violation"},
		},
		secrets: []string{"s3cret-pw-1", "s3cret-wrong-pw", "s3cret-pw-2"},
	}, {
		name:  "nkey",
		conf:  fmt.Sprintf(`authorization { users: [ {nkey: %q} ] }`, userPub),
		url:   "nats://%s",
		flags: []string{"--nats-nkey", seedFile},
		refusals: []refusal{
			{name: "none", url: "nats://%s", want: "authorization violation"},
			{name: "another", url: "nats://%s", flags: []string{"--nats-nkey", otherSeedFile}, want: "authorization violation"},
		},
		secrets: []string{string(userSeed), string(otherSeed)},
	}, {
		name:  "creds",
		conf:  operatorConf,
		url:   "nats://%s",
		flags: []string{"--nats-creds", credsFile},
		refusals: []refusal{
			{name: "none", url: "nats://%s", want: "authorization violation"},
			{name: "another account", url: "nats://%s", flags: []string{"--nats-creds", otherCredsFile}, want: "authorization violation"},
		},
	}, {
		name:  "tls",
		conf:  fmt.Sprintf(`tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }`, good.serverCert, good.serverKey, good.ca),
		url:   "tls://%s",
		flags: []string{"--nats-ca", good.ca, "--nats-cert", good.clientCert, "--nats-key", good.clientKey},
		// Refusing the client's certificate, the server either sends an
		// alert ("remote error: tls: bad certificate") or closes first
		// ("tls error: connection closed by remote after TLS handshake").
		refusals: []refusal{
			{name: "no client certificate", url: "tls://%s", flags: []string{"--nats-ca", good.ca}, want: "tls"},
			{name: "client certificate of another CA", url: "tls://%s", flags: []string{"--nats-ca", good.ca, "--nats-cert", rogue.clientCert, "--nats-key", rogue.clientKey}, want: "tls"},
			{name: "untrusted server", url: "nats://%s", flags: []string{"--nats-ca", rogue.ca, "--nats-cert", good.clientCert, "--nats-key", good.clientKey}, want: "certificate signed by unknown authority"},
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			addr := startNATSConf(t, c.conf)
			url := fmt.Sprintf(c.url, addr)
			prefix := "test-" + uneventful.NewID()[:10] + ":"
			t.Cleanup(func() { deleteRedisKeys(t, redisURL, prefix) })
			common := append([]string{"--nats", url, "--log-level", "warn"}, c.flags...)
			rd := []string{"--redis", redisURL, "--redis-prefix", prefix}
			data := t.TempDir()
			startRole(t, append(append([]string{"writer", "--domain", "wallet", "--store", filepath.Join(data, "wallet.db")}, rd...), common...)...)
			startRole(t, append([]string{"history-writer", "--store", filepath.Join(data, "history.db")}, common...)...)
			creditAndRead(t, startRole(t, append(append([]string{"server"}, rd...), common...)...))

			for _, r := range c.refusals {
				start := time.Now()
				log, err := runRole(t, append([]string{"server", "--redis", redisURL, "--nats", fmt.Sprintf(r.url, addr)}, r.flags...)...)
				took := time.Since(start)
				switch {
				case err == nil:
					t.Errorf("%s: the server role ran", r.name)
					continue
				case !strings.Contains(err.Error(), "refused the role") || !strings.Contains(strings.ToLower(err.Error()), r.want):
					t.Errorf("%s: error %q, want NATS refused the role: ... %s", r.name, err, r.want)
				case took > 15*time.Second:
					t.Errorf("%s: gave up after %v, want seconds", r.name, took)
				}
				for _, s := range c.secrets {
					if strings.Contains(err.Error()+log, s) {
						t.Errorf("%s: the error or log shows the secret %q:\n%v\n%s", r.name, s, err, log)
					}
				}
				t.Logf("%s: %v (after %v)", r.name, err, took.Round(time.Millisecond))
			}
		})
	}
}

// jwtAuth returns the configuration of a nats-server in operator mode with
// one account that may use JetStream, and credentials files of a user of
// that account and of a user of an account the server does not know.
func jwtAuth(t *testing.T, file func(string, []byte) string) (conf, creds, otherCreds string) {
	t.Helper()
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	operator, _ := nkeys.CreateOperator()
	operatorPub := must(operator.PublicKey())
	operatorJWT := must(jwt.NewOperatorClaims(operatorPub).Encode(operator))
	account := func(jetStream bool) (nkeys.KeyPair, string, string) {
		kp, _ := nkeys.CreateAccount()
		pub := must(kp.PublicKey())
		claims := jwt.NewAccountClaims(pub)
		if jetStream {
			claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		return kp, pub, must(claims.Encode(operator))
	}
	userCreds := func(name string, acc nkeys.KeyPair) string {
		kp, _ := nkeys.CreateUser()
		userJWT := must(jwt.NewUserClaims(must(kp.PublicKey())).Encode(acc))
		seed, _ := kp.Seed()
		b, err := jwt.FormatUserConfig(userJWT, seed)
		if err != nil {
			t.Fatal(err)
		}
		return file(name, b)
	}
	acc, accPub, accJWT := account(true)
	_, sysPub, sysJWT := account(false) // JetStream wants a system account, without JetStream
	other, _, _ := account(true)        // not preloaded: unknown to the server
	conf = fmt.Sprintf("operator: %q\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: { %s: %q, %s: %q }\n",
		operatorJWT, sysPub, accPub, accJWT, sysPub, sysJWT)
	return conf, userCreds("user.creds", acc), userCreds("other.creds", other)
}

// TestRedisTLS runs the server and a writer against a Redis that requires
// TLS with client certificates and a password: with the right ones a
// credit is projected and read back; with a wrong or missing password, no
// client certificate, or an untrusted server a role fails at start saying
// why, without the password.
func TestRedisTLS(t *testing.T) {
	if os.Getenv("UNEVENTFUL_REDIS_URL") == "" {
		t.Skip("UNEVENTFUL_REDIS_URL is not set; set it to a Redis server, e.g. redis://127.0.0.1:6379")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not on PATH; install it (Debian package redis-server)")
	}
	good, rogue := newPKI(t), newPKI(t)
	const password = "s3cret-redis-pw"
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, port, _ := net.SplitHostPort(addr)
	cmd := childCommand(bin, "--bind", "127.0.0.1", "--port", "0", "--tls-port", port,
		"--tls-cert-file", good.serverCert, "--tls-key-file", good.serverKey, "--tls-ca-cert-file", good.ca,
		"--tls-auth-clients", "yes", "--requirepass", password, "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not start:\n%s", out.String())
		}
	}
	natsURL := startNATS(t)
	url := "rediss://:" + password + "@" + addr
	certs := []string{"--redis-ca", good.ca, "--redis-cert", good.clientCert, "--redis-key", good.clientKey}
	common := append([]string{"--nats", natsURL, "--log-level", "warn", "--redis", url}, certs...)
	startRole(t, append([]string{"writer", "--domain", "wallet", "--store", filepath.Join(t.TempDir(), "wallet.db")}, common...)...)
	creditAndRead(t, startRole(t, append([]string{"server"}, common...)...))

	for _, r := range []struct {
		name, url string
		flags     []string
		want      string
	}{
		{"wrong password", "rediss://:s3cret-wrong-pw@" + addr, certs, "WRONGPASS"},
		{"no password", "rediss://" + addr, certs, "NOAUTH"},
		{"no client certificate", url, []string{"--redis-ca", good.ca}, "certificate required"},
		{"client certificate of another CA", url, []string{"--redis-ca", good.ca, "--redis-cert", rogue.clientCert, "--redis-key", rogue.clientKey}, "unknown certificate authority"},
		{"untrusted server", url, []string{"--redis-ca", rogue.ca, "--redis-cert", good.clientCert, "--redis-key", good.clientKey}, "certificate signed by unknown authority"},
		{"certificates without rediss://", "redis://:" + password + "@" + addr, certs, "need a rediss:// URL"},
	} {
		log, err := runRole(t, append([]string{"server", "--nats", natsURL, "--redis", r.url}, r.flags...)...)
		switch {
		case err == nil:
			t.Errorf("%s: the server role ran", r.name)
			continue
		case !strings.Contains(err.Error(), r.want):
			t.Errorf("%s: error %q, want %q in it", r.name, err, r.want)
		}
		for _, s := range []string{password, "s3cret-wrong-pw"} {
			if strings.Contains(err.Error()+log, s) {
				t.Errorf("%s: the error or log shows the password %q:\n%v\n%s", r.name, s, err, log)
			}
		}
		t.Logf("%s: %v", r.name, err)
	}
}

// TestSecurityFlagErrors: a missing, unreadable or malformed file, or flags
// that do not go together, stop a role at once with an error naming the
// flag, before it connects to anything.
func TestSecurityFlagErrors(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing listens here: a role that got as far as connecting would wait.
	nowhere := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "--nats-ca", missing}, "--nats-ca: open " + missing},
		{[]string{"writer", "--store", filepath.Join(dir, "w.db"), "--nats-ca", garbage}, "--nats-ca " + garbage + ": no PEM certificate"},
		{[]string{"history-writer", "--store", filepath.Join(dir, "h.db"), "--nats-cert", p.clientCert}, "--nats-cert and --nats-key go together"},
		{[]string{"server", "--nats-cert", p.clientCert, "--nats-key", p.serverKey}, "--nats-cert " + p.clientCert + " / --nats-key " + p.serverKey + ": tls: private key does not match"},
		{[]string{"server", "--nats-nkey", missing}, "--nats-nkey " + missing},
		{[]string{"server", "--nats-nkey", garbage}, "--nats-nkey " + garbage},
		{[]string{"server", "--nats-creds", missing}, "--nats-creds " + missing},
		{[]string{"server", "--nats-creds", garbage}, "--nats-creds " + garbage + ": no user JWT"},
		{[]string{"server", "--nats-creds", garbage, "--nats-nkey", garbage}, "--nats-creds and --nats-nkey are alternatives"},
		{[]string{"server", "--redis-ca", missing}, "--redis-ca: open " + missing},
		{[]string{"writer", "--store", filepath.Join(dir, "w.db"), "--redis-key", p.clientKey}, "--redis-cert and --redis-key go together"},
		{[]string{"server", "--redis", "redis://:s3cret@127.0.0.1:1", "--redis-ca", p.ca}, "need a rediss:// URL; --redis is redis://:xxxxx@127.0.0.1:1"},
	} {
		start := time.Now()
		_, err := runRole(t, append(c.args, "--nats", nowhere)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q in it", c.args, err, c.want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%q: took %v", c.args, d)
		}
	}
}

// TestRedact: logs and errors show no password and no NATS token.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                         "nats://127.0.0.1:4222",
		"nats://user:pw@127.0.0.1:4222":                 "nats://user:xxxxx@127.0.0.1:4222",
		"nats://t0ken@127.0.0.1:4222":                   "nats://xxxxx@127.0.0.1:4222",
		"tls://t0ken@n1:4222,tls://t0ken@n2:4222":       "tls://xxxxx@n1:4222,tls://xxxxx@n2:4222",
		"nats://u:p@n1:4222,nats://n2:4222":             "nats://u:xxxxx@n1:4222,nats://n2:4222",
		"rediss://:pw@127.0.0.1:6380/0":                 "rediss://:xxxxx@127.0.0.1:6380/0",
		"postgres://app:p@ss@db:5432/x?sslmode=require": "postgres://app:xxxxx@db:5432/x?sslmode=require",
		"postgres://app@db/x":                           "postgres://app@db/x",
		"./data/wallet.db":                              "./data/wallet.db",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
