module llm-audit/scannercases

go 1.21
