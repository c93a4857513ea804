package client_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client"
)

func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := client.Dial(ctx, "wss://game.example/ws", &client.Options{
		Subprotocols: []string{"game.v1"},
		Compression:  true,
		PingInterval: 20 * time.Second,
	})
	if err != nil {
		var he *client.HandshakeError
		if errors.As(err, &he) {
			log.Printf("refused with HTTP %d", he.StatusCode)
		}
		return
	}
	defer c.Close(ws.StatusNormalClosure, "")

	if err := c.WriteMessage(ws.OpText, []byte(`{"join":"lobby"}`)); err != nil {
		return
	}
	for {
		op, msg, err := c.ReadMessage(context.Background())
		if err != nil {
			log.Printf("closed: code %d (%v)", client.CloseStatus(err), err)
			return
		}
		log.Printf("%v %s", op, msg)
	}
}
