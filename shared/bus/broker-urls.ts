/** AMQP_URL names one broker or every node of a cluster, comma-separated. */
export function brokerUrls(value: string): string[] {
  return value
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '');
}
