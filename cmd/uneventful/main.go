// Command uneventful runs the uneventful services and reads their logs.
//
//	uneventful serve                  everything in one process, embedded defaults
//	uneventful ksuid                  print a new entity id
//	uneventful events|states|history  read the logs (--entity, --follow, --json)
//	uneventful version | help
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if err != errUsage {
			fmt.Fprintln(os.Stderr, "uneventful:", err)
		}
		os.Exit(2)
	}
}
