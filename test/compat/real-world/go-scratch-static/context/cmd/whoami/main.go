// whoami prints a greeting, its user and group ids and how many CA certificates
// the system pool holds (0 would mean the bundle is missing).
package main

import (
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	greeting := flag.String("greeting", "hello", "what to say first")
	flag.Parse()
	fmt.Println(*greeting)
	fmt.Printf("uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	pem, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		fmt.Println("no CA bundle:", err)
		os.Exit(1)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fmt.Println("CA bundle has no certificates")
		os.Exit(1)
	}
	n := strings.Count(string(pem), "BEGIN CERTIFICATE")
	fmt.Printf("ca bundle: %t\n", n > 100)
	if len(flag.Args()) > 0 {
		fmt.Println("args:", strings.Join(flag.Args(), " "))
	}
}
