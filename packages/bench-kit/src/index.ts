export { benchTime, QUICK } from './internal/quick.js';
export { BenchReport, type ReportOptions } from './internal/report.js';
export { formatTable, type Row, type Table } from './internal/table.js';
export { tinybenchRows } from './internal/tinybench.js';
