module llm-audit/secretcases

go 1.21
