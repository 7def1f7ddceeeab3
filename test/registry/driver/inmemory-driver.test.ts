import { InMemoryDriver } from '../../../registry/driver/inmemory/inmemory-driver.js';
import { runDriverSuite } from './driver-suite.js';

runDriverSuite('inmemory', async () => ({ driver: new InMemoryDriver(), cleanup: async () => undefined }));
