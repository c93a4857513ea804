// Command megaws runs a megaws WebSocket server: an echo, broadcast or sink
// target for load tools and a reference for embedding.
//
//	megaws serve                      # echo server on 127.0.0.1:8080
//	megaws serve --mode broadcast --addr 0.0.0.0:9000
//	megaws serve --workers 8 --addr 127.0.0.1:9000   # 8 processes, SO_REUSEPORT
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `megaws — a WebSocket (RFC 6455) server on gnet event loops.

Usage:
  megaws serve [flags]    run a server (echo on 127.0.0.1:8080 by default)
  megaws version          print the version
  megaws help             this text; "megaws serve --help" lists the flags

Plain HTTP on the same port: GET /healthz answers 200; in --mode demo, GET /
serves the demo page; any other request without a WebSocket upgrade answers
426 Upgrade Required (405 for methods other than GET and HEAD).

wss://: megaws speaks plain TCP; terminate TLS in front of it (a tested nginx
configuration is in scripts/nginx/megaws.conf).
`

const version = "0.1.0"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "megaws", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "megaws: unknown command %q\n\n%s", args[0], usage)
	return 2
}
