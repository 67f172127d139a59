package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
)

// TestSlowloris: 1000 connections that dribble a request header one byte
// at a time do not keep normal clients from being served, and the server
// drops them once its header timeout passes.
func TestSlowloris(t *testing.T) {
	c := startChild(t, "serve", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--nats-port", "-1")
	addr := strings.TrimPrefix(c.url, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 1000; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		conns = append(conns, conn)
	}
	// Normal clients meanwhile.
	w := uneventful.NewID()
	client := &http.Client{Timeout: 5 * time.Second}
	var worst time.Duration
	for i := 0; i < 50; i++ {
		start := time.Now()
		res, err := client.Post(c.url+"/wallet/"+w+"/credit", "application/json", strings.NewReader(`{"amount": 1}`))
		if err != nil {
			t.Fatalf("a normal client was not served while 1000 slow connections were open: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("normal client: %d", res.StatusCode)
		}
		worst = max(worst, time.Since(start))
		// Keep the slow connections dribbling.
		for _, conn := range conns[i*20 : i*20+20] {
			conn.Write([]byte("X"))
		}
	}
	if worst > 2*time.Second {
		t.Fatalf("a normal request took %v while slow connections were open", worst)
	}
	// The header timeout (5 s) closes the slow ones: a read sees EOF.
	deadline := time.Now().Add(15 * time.Second)
	closed := 0
	buf := make([]byte, 512)
	for _, conn := range conns[:50] {
		conn.SetReadDeadline(deadline)
		for {
			if _, err := conn.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("a slow connection was still open after 15 s: no header timeout")
				}
				closed++
				break
			}
		}
	}
	t.Logf("worst normal request %v; %d of 50 sampled slow connections closed by the server", worst, closed)
}
