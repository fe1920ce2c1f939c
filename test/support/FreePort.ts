/**
 * A port that was free a moment ago on 127.0.0.1 (something else may take it before it is
 * used). Its own module, importing nothing of the suite, so that the global setup can share it.
 */
import * as Net from "node:net"

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
