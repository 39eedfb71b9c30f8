package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckBodyLimit bounds what is read of the answer: /readyz's JSON
// is a few hundred bytes; anything else is cut, never held whole.
const healthcheckBodyLimit = 4096

// healthcheckCmd is the container image's HEALTHCHECK: the image is
// distroless (no shell, no curl), so sluice probes its own admin
// endpoint. It prints the answer (docker/podman keep it for `inspect`)
// and exits 0 on 200, else 1 — the exit codes HEALTHCHECK expects.
func healthcheckCmd() *cobra.Command {
	var url string
	var timeout time.Duration
	var insecure bool
	c := &cobra.Command{
		Use:   "healthcheck [--url URL]",
		Short: "GET an admin endpoint (default /readyz): exit 0 if it answers 200, else print why and exit 1",
		Long: `GET an admin endpoint and exit 0 if it answers 200 OK, else print why and
exit 1: a health check for container images without curl (the
Containerfile's HEALTHCHECK) and for scripts.

The default URL is /readyz on the default admin.address; /readyz answers
503 while a database cannot be served or sluice is shutting down. Use
/livez to check only that the process answers. No HTTP proxy is used.
With an HTTPS admin endpoint on the loopback address, --insecure skips
the certificate check (as Kubernetes' HTTPS probes do).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return probe(cmd, url, timeout, insecure)
		},
		SilenceErrors: true,
	}
	c.Flags().StringVar(&url, "url", "http://127.0.0.1:9930/readyz", "the URL to GET")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long (connect, answer and body)")
	c.Flags().BoolVar(&insecure, "insecure", false, "with https: do not verify the server's certificate")
	return c
}

func probe(cmd *cobra.Command, url string, timeout time.Duration, insecure bool) error {
	fail := func(err error) error {
		fmt.Fprintf(cmd.ErrOrStderr(), "sluice healthcheck: %s: %v\n", url, err)
		return err
	}
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return fail(errors.New("the URL must start with http:// or https://"))
	}
	transport := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if insecure {
		transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure, for loopback probes
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: timeout}
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, url, nil)
	if err != nil {
		return fail(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, healthcheckBodyLimit))
	if err != nil {
		return fail(fmt.Errorf("reading the answer: %w", err))
	}
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("%s: %s", resp.Status, text))
	}
	fmt.Fprintln(cmd.OutOrStdout(), text)
	return nil
}
