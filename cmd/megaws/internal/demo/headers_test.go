package demo

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
)

// TestPagePolicyAllowsThePage checks the policy against the page: every inline
// <script> and <style> is allowed by its hash, and the page holds nothing a
// hash cannot allow (inline event handlers, style attributes, javascript:
// URLs, external scripts), which the policy would block.
func TestPagePolicyAllowsThePage(t *testing.T) {
	page := string(indexHTML)
	if strings.Contains(page, "\r") {
		t.Fatal("index.html has CR characters: the browser hashes the parsed text, with CRLF turned into LF")
	}
	for _, tag := range []string{"script", "style"} {
		open, end := "<"+tag+">", "</"+tag+">"
		if n, m := strings.Count(page, "<"+tag), strings.Count(page, open); n != m {
			t.Fatalf("index.html has %d <%s elements, %d of them without attributes: this test reads only the latter", n, tag, m)
		}
		rest, found := page, 0
		for {
			i := strings.Index(rest, open)
			if i < 0 {
				break
			}
			rest = rest[i+len(open):]
			j := strings.Index(rest, end)
			if j < 0 {
				t.Fatalf("unclosed %s", open)
			}
			sum := sha256.Sum256([]byte(rest[:j]))
			src := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
			if !strings.Contains(pagePolicy, tag+"-src "+src) && !strings.Contains(pagePolicy, " "+src) {
				t.Errorf("%s element %d (%d bytes): %s is not in the policy %q", tag, found+1, j, src, pagePolicy)
			}
			found++
			rest = rest[j+len(end):]
		}
		if found == 0 {
			t.Errorf("index.html has no inline <%s>; the policy should say 'none' for it and this test should know", tag)
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<[a-z][^>]*\son[a-z]+\s*=`),
		regexp.MustCompile(`(?i)<[a-z][^>]*\sstyle\s*=`),
		regexp.MustCompile(`(?i)javascript:`),
		regexp.MustCompile(`(?i)<script[^>]*\ssrc\s*=`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html has %q, which the Content-Security-Policy blocks", m)
		}
	}
	for _, want := range []string{"default-src 'none'", "script-src 'sha256-", "style-src 'sha256-", "connect-src 'self'",
		"base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'", "img-src data:"} {
		if !strings.Contains(pagePolicy, want) {
			t.Errorf("policy %q has no %q", pagePolicy, want)
		}
	}
	for _, loose := range []string{"'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:"} {
		if strings.Contains(pagePolicy, loose) {
			t.Errorf("policy %q allows %s", pagePolicy, loose)
		}
	}
}

func TestSecurityHeader(t *testing.T) {
	const tail = "\r\nX-Content-Type-Options: nosniff\r\n"
	for _, tc := range []struct {
		host, connect string
	}{
		{host: "127.0.0.1:8080", connect: "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080"},
		{host: "Game.Example", connect: "connect-src 'self' ws://game.example wss://game.example"},
		{host: "", connect: "connect-src 'self'"},
		{host: "[::1]:8080", connect: "connect-src 'self'"},
		{host: "evil.example; script-src *", connect: "connect-src 'self'"},
		{host: "a.example:80,b", connect: "connect-src 'self'"},
		{host: "a.example:", connect: "connect-src 'self'"},
		{host: ":8080", connect: "connect-src 'self'"},
		{host: "a.example\r\nSet-Cookie: x=1", connect: "connect-src 'self'"},
		{host: "a\x0d\x0e.example", connect: "connect-src 'self'"},
		{host: "a.example:8080:1", connect: "connect-src 'self'"},
		{host: "a.example:123456", connect: "connect-src 'self'"},
	} {
		got := securityHeader(tc.host)
		want := "Content-Security-Policy: " + pagePolicy[:len(pagePolicy)-len("connect-src 'self'")] + tc.connect + tail
		if got != want {
			t.Errorf("Host %q:\n got %q\nwant %q", tc.host, got, want)
		}
		if strings.Count(got, "\r\n") != 2 || strings.Count(got, "\n") != 2 {
			t.Errorf("Host %q: %q is not exactly two header lines", tc.host, got)
		}
	}
}
