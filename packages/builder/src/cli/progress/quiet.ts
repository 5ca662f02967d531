/**
 * `--progress quiet`, like `docker build -q`: nothing while the build runs;
 * the image digest on stdout when it succeeds; on failure the failed step's
 * output (the error itself is printed by the CLI).
 */
import { errorLine, type ProgressListener } from '../../engine/progress.js';
import { failureBlock, FAILURE_LOG_LINES, LogTail } from './format.js';

export function quietRenderer(out: (text: string) => void, err: (text: string) => void): ProgressListener {
  const steps = new Map<number, { name: string; logs: LogTail }>();
  return (event) => {
    switch (event.type) {
      case 'step.start':
        steps.set(event.step, { name: event.name, logs: new LogTail(FAILURE_LOG_LINES) });
        return;
      case 'step.log':
        steps.get(event.step)?.logs.push(event.line);
        return;
      case 'step.end': {
        const step = steps.get(event.step);
        steps.delete(event.step);
        if (step && event.status === 'error') err(failureBlock(step.name, step.logs).map((l) => `${l}\n`).join(''));
        return;
      }
      case 'summary':
        out(`${event.digest}\n`);
        return;
      case 'error':
        err(`${errorLine(event)}\n`);
        return;
      default:
        return;
    }
  };
}
