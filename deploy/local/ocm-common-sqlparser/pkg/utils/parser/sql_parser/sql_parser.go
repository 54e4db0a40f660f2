package sql_parser

type SQLParser interface {
	Parse(sql string) (string, interface{}, error)
}

type SQLParserOption func(*sqlParser)

type sqlParser struct{}

func NewSQLParser(options ...SQLParserOption) SQLParser { return &sqlParser{} }

func (p *sqlParser) Parse(sql string) (string, interface{}, error) { return "", []interface{}{}, nil }
