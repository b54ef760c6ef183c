// Command vcsim serves govmomi's vCenter simulator (simulator.VPX()) on
// loopback, as nfclease's peer target. tools/build-vcsim builds it in GOPATH
// mode against Debian's golang-github-vmware-govmomi-dev (govmomi 0.24.2).
//
// The first line of stdout is the SDK URL (https://127.0.0.1:PORT/sdk),
// printed once the listener completes a TLS handshake. SIGINT/SIGTERM stop it
// (exit 0, the model's temporary datastore directories removed).
//
// TLS: by default a fresh self-signed ECDSA P-256 certificate (SAN 127.0.0.1,
// ::1, localhost) is made at start. The simulator's built-in certificate
// (-builtin-cert) is a 1024-bit RSA key published in Go's source, which
// OpenSSL 3 at security level 2 (Debian's default, so Python's ssl) refuses
// with "EE certificate key too weak".
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
)

// selfSigned makes a certificate valid for the loopback names, its own CA.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	ski := sha1.Sum(pub)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "127.0.0.1", Organization: []string{"nfclease vcsim"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski[:],
		AuthorityKeyId:        ski[:],
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback host:port to serve on (port 0 = a free port)")
	username := flag.String("username", "", "the one accepted user name (default: any non-empty user/password pair)")
	password := flag.String("password", "", "the one accepted password (with -username)")
	certOut := flag.String("cert-out", "", "write the served TLS certificate as PEM to this file")
	builtin := flag.Bool("builtin-cert", false, "serve the simulator's built-in 1024-bit RSA certificate instead of a fresh one")
	flag.Parse()
	log.SetPrefix("vcsim: ")

	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		log.Fatalf("-listen %q: %v", *listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		log.Fatalf("-listen %q: only a loopback IP address is served", *listen)
	}
	if (*username == "") != (*password == "") {
		log.Fatalf("-username and -password go together")
	}

	tlsConfig := new(tls.Config) // empty: the simulator's built-in certificate
	if !*builtin {
		cert, err := selfSigned()
		if err != nil {
			log.Fatalf("certificate: %v", err)
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	}

	model := simulator.VPX()
	if err := model.Create(); err != nil {
		log.Fatalf("model: %v", err)
	}
	model.Service.TLS = tlsConfig
	model.Service.Listen = &url.URL{Host: *listen}
	if *username != "" {
		// SessionManager.Login then accepts exactly this pair.
		model.Service.Listen.User = url.UserPassword(*username, *password)
	}
	model.Service.RegisterEndpoints = true
	server := model.Service.NewServer()

	code := 0
	func() {
		defer func() {
			server.Close()
			model.Remove()
		}()
		cert := server.Certificate()
		if *certOut != "" {
			block := &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}
			if err := ioutil.WriteFile(*certOut, pem.EncodeToMemory(block), 0o644); err != nil {
				log.Printf("-cert-out: %v", err)
				code = 1
				return
			}
		}

		// Ready = a TLS handshake that verifies against the served certificate
		// succeeds (bounded: 10 s).
		roots := x509.NewCertPool()
		roots.AddCert(cert)
		addr := server.URL.Host
		dialer := &net.Dialer{Timeout: time.Second}
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := tls.DialWithDialer(dialer, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: server.URL.Hostname()})
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				log.Printf("%s does not complete a TLS handshake: %v", addr, err)
				code = 1
				return
			}
			time.Sleep(20 * time.Millisecond)
		}

		u := *server.URL
		u.User = nil // never print credentials
		fmt.Println(u.String())
		_ = os.Stdout.Sync()

		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		log.Printf("stopping on %v", <-sig)
	}()
	os.Exit(code)
}
