//go:build !linux

package main

import "errors"

// bots needs client/loop, which runs on Linux (epoll).
func bots([]string) error { return errors.New("bots: Linux only (client/loop uses epoll)") }
