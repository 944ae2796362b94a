// Command ferretdb runs FerretDB v1 with its SQLite backend for the local stack.
//
// It embeds the ferretdb package instead of building cmd/ferretdb, whose
// `go install` build panics at start-up for lack of build/version/version.txt.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("sqlite-dir", "data", "directory holding the SQLite databases")
	level := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "invalid -log-level %q: use debug, info, warn or error\n", *level)
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	if err := os.MkdirAll(*dir, 0o755); err != nil {
		logger.Error("cannot create sqlite dir", "dir", *dir, "err", err)
		os.Exit(1)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "err", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("FerretDB listening", "addr", *listen, "sqlite_dir", *dir)
	if err := f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped", "err", err)
		os.Exit(1)
	}
}
