package remote

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/openshift-online/ocm-sdk-go/logging"
)

// sdkLogger adapts slog to the ocm-sdk-go logger Maestro's source client
// takes. Fatal logs at error level and does not exit: a library must not end
// the process, and the client only calls it for conditions it survives.
type sdkLogger struct{ l *slog.Logger }

var _ logging.Logger = sdkLogger{}

func newSDKLogger(l *slog.Logger) sdkLogger {
	return sdkLogger{l: l.With("component", "maestro-client")}
}

func (s sdkLogger) enabled(level slog.Level) bool { return s.l.Enabled(context.Background(), level) }

func (s sdkLogger) DebugEnabled() bool { return s.enabled(slog.LevelDebug) }
func (s sdkLogger) InfoEnabled() bool  { return s.enabled(slog.LevelInfo) }
func (s sdkLogger) WarnEnabled() bool  { return s.enabled(slog.LevelWarn) }
func (s sdkLogger) ErrorEnabled() bool { return s.enabled(slog.LevelError) }

func (s sdkLogger) log(ctx context.Context, level slog.Level, format string, args []any) {
	if ctx == nil {
		ctx = context.Background()
	}
	if !s.l.Enabled(ctx, level) {
		return
	}
	s.l.Log(ctx, level, fmt.Sprintf(format, args...))
}

func (s sdkLogger) Debug(ctx context.Context, format string, args ...any) {
	s.log(ctx, slog.LevelDebug, format, args)
}

// Info goes to debug: the client logs every watcher registration and resync
// at info, which is routine for this adapter.
func (s sdkLogger) Info(ctx context.Context, format string, args ...any) {
	s.log(ctx, slog.LevelDebug, format, args)
}

func (s sdkLogger) Warn(ctx context.Context, format string, args ...any) {
	s.log(ctx, slog.LevelWarn, format, args)
}

func (s sdkLogger) Error(ctx context.Context, format string, args ...any) {
	s.log(ctx, slog.LevelError, format, args)
}

func (s sdkLogger) Fatal(ctx context.Context, format string, args ...any) {
	s.log(ctx, slog.LevelError, format, args)
}
