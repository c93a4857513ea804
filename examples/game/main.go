// Command game is the megaws game example: a server that puts players into
// matches of 8, steps their world 20 times a second and sends each match its
// state; a bots mode that connects hundreds of players from one process; and
// a token minter. See README.md.
//
//	go run ./examples/game                      # serve on 127.0.0.1:8090
//	go run ./examples/game bots -n 200          # 200 bots against it
//	go run ./examples/game token alice          # a token for player alice
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/megaws/megaws/examples/game/arena"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "bots" || args[0] == "token") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "bots":
		err = bots(args)
	case "token":
		err = token(args)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "game:", err)
		os.Exit(1)
	}
}

// secretFlag defines -secret and returns the key to use after parsing:
// the flag, else $GAME_SECRET, else the demo secret.
func secretFlag(fs *flag.FlagSet) func() []byte {
	s := fs.String("secret", "", "HMAC key of the tokens (default: $GAME_SECRET, else the demo secret)")
	return func() []byte {
		switch {
		case *s != "":
			return []byte(*s)
		case os.Getenv("GAME_SECRET") != "":
			return []byte(os.Getenv("GAME_SECRET"))
		}
		return []byte(arena.DemoSecret)
	}
}

// token prints a token for the player named by its argument.
func token(args []string) error {
	fs := flag.NewFlagSet("game token", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: game token [-secret S] [-ttl 24h] NAME")
		fs.PrintDefaults()
	}
	secret := secretFlag(fs)
	ttl := fs.Duration("ttl", 24*time.Hour, "validity")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("token: one player name expected")
	}
	t, err := arena.MintToken(secret(), fs.Arg(0), *ttl)
	if err != nil {
		return err
	}
	fmt.Println(t)
	return nil
}
