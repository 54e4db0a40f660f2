package brokerconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// file is broker.yaml as the library lays it out (broker/config.go,
// rabbitmq.go and googlepubsub.go of hyperfleet-broker v1.1.1), plus the
// adapter's topic, subscription ID and status topic. The json tags are the
// file keys, matched case-insensitively as Viper does. The env tag names the
// environment variables that override a setting, strongest first; without
// one it is the library's (Viper's) name, the dotted key in upper case with
// underscores (broker.rabbitmq.url -> BROKER_RABBITMQ_URL), and "-" means
// none.
//
// Every leaf is a setting, kept as text until Parse converts it: the library
// is weakly typed ("10" is a valid prefetch_count, 10 a valid project_id),
// and a wrong value is reported with its name rather than as a decoding
// error that stops at the first one.
type file struct {
	LogConfig setting `json:"log_config"`
	Broker    struct {
		Type           setting `json:"type"`
		Topic          setting `json:"topic" env:"HYPERFLEET_BROKER_TOPIC,BROKER_TOPIC"`
		SubscriptionID setting `json:"subscription_id" env:"HYPERFLEET_BROKER_SUBSCRIPTION_ID,BROKER_SUBSCRIPTION_ID"`
		StatusTopic    setting `json:"status_topic"`
		RabbitMQ       struct {
			URL              setting `json:"url"`
			Exchange         setting `json:"exchange"`
			ExchangeType     setting `json:"exchange_type"`
			Queue            setting `json:"queue"`
			RoutingKey       setting `json:"routing_key"`
			PrefetchCount    setting `json:"prefetch_count"`
			PrefetchSize     setting `json:"prefetch_size"`
			ConsumerTag      setting `json:"consumer_tag"`
			PublisherConfirm setting `json:"publisher_confirm"`
		} `json:"rabbitmq"`
		GooglePubSub struct {
			// Topic and SubscriptionID here are read when broker.topic and
			// broker.subscription_id are not set.
			Topic                       setting `json:"topic" env:"-"`
			SubscriptionID              setting `json:"subscription_id" env:"-"`
			ProjectID                   setting `json:"project_id"`
			AckDeadlineSeconds          setting `json:"ack_deadline_seconds"`
			MessageRetentionDuration    setting `json:"message_retention_duration"`
			ExpirationTTL               setting `json:"expiration_ttl"`
			EnableMessageOrdering       setting `json:"enable_message_ordering"`
			RetryMinBackoff             setting `json:"retry_min_backoff"`
			RetryMaxBackoff             setting `json:"retry_max_backoff"`
			DeadLetterTopic             setting `json:"dead_letter_topic"`
			DeadLetterMaxAttempts       setting `json:"dead_letter_max_attempts"`
			TopicRetentionDuration      setting `json:"topic_retention_duration"`
			MaxOutstandingMessages      setting `json:"max_outstanding_messages"`
			MaxOutstandingBytes         setting `json:"max_outstanding_bytes"`
			NumGoroutines               setting `json:"num_goroutines"`
			CreateTopicIfMissing        setting `json:"create_topic_if_missing"`
			CreateSubscriptionIfMissing setting `json:"create_subscription_if_missing"`
		} `json:"googlepubsub"`
	} `json:"broker"`
	Subscriber struct {
		Parallelism setting `json:"parallelism"`
	} `json:"subscriber"`
}

// setting is one value of broker.yaml or of the environment.
type setting struct {
	key  string   // dotted file key
	env  []string // overriding environment variables, strongest first
	text string   // the value, scalars as the YAML wrote them
	// shape is set when the file gives a list or a mapping, which no
	// setting takes.
	shape string
}

// String names the setting by its file key and its environment variables.
func (s *setting) String() string {
	if len(s.env) == 0 {
		return s.key
	}
	return s.key + " (" + strings.Join(s.env, " or ") + ")"
}

// UnmarshalJSON keeps a scalar as text; a null is an empty value.
func (s *setting) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case '"':
		return json.Unmarshal(b, &s.text)
	case '[':
		s.shape = "a list"
	case '{':
		s.shape = "a mapping"
	case 'n':
		s.text = ""
	default: // number, true, false
		s.text = string(b)
	}
	return nil
}

// schema is a file with every setting named: Parse starts from a copy of
// it, and Validate names settings by its fields.
var schema = func() file {
	var f file
	eachSetting(&f, func(s *setting, key, envTag string) {
		s.key = key
		switch envTag {
		case "":
			s.env = []string{strings.ToUpper(strings.ReplaceAll(key, ".", "_"))}
		case "-":
		default:
			s.env = strings.Split(envTag, ",")
		}
	})
	return f
}()

// eachSetting calls fn with every setting of f, its dotted key and its env
// tag.
func eachSetting(f *file, fn func(s *setting, key, envTag string)) {
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			field := v.Type().Field(i)
			key := field.Tag.Get("json")
			if prefix != "" {
				key = prefix + "." + key
			}
			if s, ok := v.Field(i).Addr().Interface().(*setting); ok {
				fn(s, key, field.Tag.Get("env"))
			} else {
				walk(v.Field(i), key)
			}
		}
	}
	walk(reflect.ValueOf(f).Elem(), "")
}

// EnvironmentVariables lists, sorted, every environment variable the
// configuration reads besides BROKER_CONFIG_FILE.
func EnvironmentVariables() []string {
	var names []string
	f := schema
	eachSetting(&f, func(s *setting, _, _ string) { names = append(names, s.env...) })
	sort.Strings(names)
	return names
}

// readFile reads broker.yaml content (may be empty) into a named file and
// applies the environment overrides from lookup. Viper treats an empty
// environment variable as unset (AllowEmptyEnv is off), and so does this.
func readFile(data []byte, lookup LookupEnv) (file, error) {
	f := schema
	if err := yaml.Unmarshal(data, &f); err != nil {
		var wrongType *json.UnmarshalTypeError
		if !errors.As(err, &wrongType) {
			return file{}, fmt.Errorf("broker config: not valid YAML: %w", err)
		}
		// A list or a scalar where the layout has a mapping.
		got := map[string]string{"array": "a list", "string": "a string", "number": "a number", "bool": "a boolean"}[wrongType.Value]
		if wrongType.Field == "" {
			return file{}, fmt.Errorf("broker config: the document must be a mapping, not %s", got)
		}
		return file{}, fmt.Errorf("broker config: %s: must be a mapping, not %s", wrongType.Field, got)
	}
	var errs []error
	eachSetting(&f, func(s *setting, _, _ string) {
		if s.shape != "" {
			errs = append(errs, fmt.Errorf("%s: %s is not a valid value", s.key, s.shape))
		}
		for _, name := range s.env {
			if v, ok := lookup(name); ok && v != "" {
				s.text = v
				break
			}
		}
		s.text = strings.TrimSpace(s.text)
	})
	if err := errors.Join(errs...); err != nil {
		return file{}, fmt.Errorf("broker config: %w", err)
	}
	return f, nil
}

// converter turns settings into values, collecting every error.
type converter struct{ errs []error }

func (cv *converter) integer(s setting) int {
	if s.text == "" {
		return 0
	}
	n, err := strconv.Atoi(s.text)
	if err != nil {
		// Weak typing as in mapstructure: a whole float ("10.0") is accepted.
		if f, ferr := strconv.ParseFloat(s.text, 64); ferr == nil && f == float64(int(f)) {
			return int(f)
		}
		cv.errs = append(cv.errs, fmt.Errorf("%s: %q is not an integer", &s, s.text))
	}
	return n
}

func (cv *converter) boolean(s setting) bool {
	if s.text == "" {
		return false
	}
	b, err := strconv.ParseBool(s.text)
	if err != nil {
		cv.errs = append(cv.errs, fmt.Errorf("%s: %q is not a boolean (true or false)", &s, s.text))
	}
	return b
}

func (cv *converter) duration(s setting) time.Duration {
	if d := cv.optDuration(s); d != nil {
		return *d
	}
	return 0
}

// optDuration is nil when the setting is unset.
func (cv *converter) optDuration(s setting) *time.Duration {
	if s.text == "" {
		return nil
	}
	d, err := ParseDuration(s.text)
	if err != nil {
		cv.errs = append(cv.errs, fmt.Errorf("%s: %w", &s, err))
		return nil
	}
	return &d
}

// ParseDuration reads a Google Cloud duration as the library does: Go
// durations ("604800s", "10m", "1h"), whole days ("7d"), or "0".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseInt(days, 10, 64); err == nil {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	return 0, fmt.Errorf("%q is not a duration (e.g. 600s, 10m, 1h, 7d)", s)
}
