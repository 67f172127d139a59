package nats_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	uenats "github.com/uneventful/uneventful/nats"
)

// TestWatchRecoversFromFullDisk: JetStream's store fills the disk it is on
// (a 1 MiB tmpfs); publishes are refused, never acknowledged falsely; once
// space returns, the watch restarts JetStream and publishing works again,
// with the messages stored before still there, without restarting the
// server.
func TestWatchRecoversFromFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s; detaching it lazily", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	ns, err := uenats.StartEmbedded(uenats.EmbeddedConfig{Port: -1, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go ns.Watch(ctx, 200*time.Millisecond, slog.New(slog.DiscardHandler))
	nc, err := ns.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uenats.EnsureStream(ctx, js, uenats.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	publish := func(i int) error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := js.Publish(pctx, "recorded.test.x.y", []byte(strings.Repeat("x", 8<<10)), jetstream.WithMsgID(time.Now().String()+string(rune('a'+i%26))))
		return err
	}
	stored := 0
	var full error
	for i := 0; i < 1000; i++ {
		if full = publish(i); full != nil {
			break
		}
		stored++
	}
	if full == nil {
		t.Fatal("1000 publishes of 8 KiB fitted on a 1 MiB disk")
	}
	t.Logf("the disk was full after %d publishes: %v", stored, full)
	stream, err := js.Stream(ctx, uenats.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err == nil && info.State.Msgs > uint64(stored) {
		t.Fatalf("the stream holds %d messages, more than the %d acknowledged", info.State.Msgs, stored)
	}

	if out, err := exec.Command("mount", "-o", "remount,size=64m", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := publish(0)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publishing still fails 15 s after space returned: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stream, err = js.Stream(ctx, uenats.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs < uint64(stored) {
		t.Fatalf("after the restart the stream holds %d messages, fewer than the %d acknowledged", info.State.Msgs, stored)
	}
}
